"""Alerting configuration: the rules file (YAML), defaults, overrides and ``${ENV}`` secrets.

A broken file fails to load with :class:`RuleError`, whose message names the file, the line and
the field of every problem (``rules.yaml:12:16: rules[1].threshold: …``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from otel_llm import config as _settings
from otel_llm.alerts.notifiers import Notifier, NotifierConfig, build_notifier
from otel_llm.alerts.rules import Rule, parse_duration

__all__ = [
    "ENV_JAEGER_URL",
    "AlertsConfig",
    "Delivery",
    "Issue",
    "RuleError",
    "default_rules",
    "load_config",
    "notifier_objects",
    "parse_config",
    "resolve",
]

ENV_RULES = _settings.ENV_RULES
ENV_JAEGER_URL = "OTEL_LLM_JAEGER_URL"
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Where ${ENV} is expanded: secrets live there, and rule annotations keep their `$` as typed.
_EXPANDED = ("notifiers", "jaeger_url")

Path_ = tuple[str | int, ...]


class Delivery(BaseModel):
    """How notifications are delivered (the ``delivery:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_size: int = Field(default=100, ge=1)
    max_attempts: int = Field(default=5, ge=1)
    initial_backoff: float = 1.0
    max_backoff: float = 60.0

    @field_validator("initial_backoff", "max_backoff", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_defaults: bool = True
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    notifiers: list[NotifierConfig] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)
    evaluation_interval: float = 1.0
    jaeger_url: str | None = None

    @field_validator("evaluation_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be > 0")
        return seconds


@dataclass(frozen=True)
class AlertsConfig:
    """Everything in-process alerting needs, resolved: the effective rules (defaults merged,
    overrides applied), notifiers (configs or ready objects), delivery and evaluation settings."""

    rules: tuple[Rule, ...]
    notifiers: tuple[Any, ...] = ()
    """:data:`~otel_llm.alerts.notifiers.NotifierConfig` entries or :class:`Notifier` objects."""
    delivery: Delivery = field(default_factory=Delivery)
    evaluation_interval: float = 1.0
    jaeger_url: str | None = None


@dataclass(frozen=True)
class Issue:
    """One problem in a rules file; ``line``/``column`` are 1-based, None when unknown."""

    source: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RuleError(ValueError):
    """A rules file that cannot be used. ``issues`` lists every problem with its location."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = list(issues)


# --- loading ------------------------------------------------------------------------------------
def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    notifiers: bool = True,
) -> AlertsConfig:
    """Load a rules file. ``notifiers=False`` ignores its ``notifiers:`` section (so exporting
    rules does not need the notifiers' secrets in the environment)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read rules file {os.fspath(path)}: {exc.strerror}") from None
    return parse_config(text, source=os.fspath(path), environ=environ, notifiers=notifiers)


def parse_config(
    text: str,
    *,
    source: str = "<rules>",
    environ: Mapping[str, str] | None = None,
    notifiers: bool = True,
) -> AlertsConfig:
    """Parse rules-file text (see :func:`load_config`)."""
    doc = _Doc.parse(text, source)
    data = doc.data
    if not notifiers:
        data.pop("notifiers", None)
    env = os.environ if environ is None else environ
    issues: list[Issue] = []
    for key in _EXPANDED:
        if key in data:
            data[key] = _expand(data[key], (key,), env, doc, issues)
    if issues:
        raise RuleError(issues)
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise RuleError(doc.issues(exc)) from None
    rules = _merge(parsed, doc)
    names = [getattr(n, "name", None) or n.type for n in parsed.notifiers]
    for i, name in enumerate(names):
        if name in names[:i]:
            issues.append(doc.issue(("notifiers", i), f"duplicate notifier name {name!r}"))
    if issues:
        raise RuleError(issues)
    return AlertsConfig(
        rules=tuple(rules),
        notifiers=tuple(parsed.notifiers),
        delivery=parsed.delivery,
        evaluation_interval=parsed.evaluation_interval,
        jaeger_url=parsed.jaeger_url,
    )


@functools.cache  # immutable rules from a file that ships with the package
def default_rules() -> tuple[Rule, ...]:
    """The rules shipped with otel-llm (``default_rules.yaml``)."""
    text = resources.files("otel_llm.alerts").joinpath("default_rules.yaml").read_text("utf-8")
    doc = _Doc.parse(text, "otel_llm/alerts/default_rules.yaml")
    try:
        parsed = _File.model_validate({**doc.data, "include_defaults": False})
    except ValidationError as exc:  # a packaging bug; still say where
        raise RuleError(doc.issues(exc)) from None
    return tuple(parsed.rules)


def resolve(
    rules: Any = None, notifiers: Any = None, *, environ: Mapping[str, str] | None = None
) -> AlertsConfig:
    """What ``configure(rules=…, notifiers=…)`` means (DESIGN.md §8).

    ``rules``: None → the file named by ``OTEL_LLM_RULES``, else the default rules; a path → that
    file; an :class:`AlertsConfig`; or an iterable of :class:`Rule` (exactly those rules, no
    defaults). ``notifiers``: None → the rules file's ``notifiers:``; a path → that file's
    ``notifiers:`` section; or an iterable of notifier configs / :class:`Notifier` objects.
    ``OTEL_LLM_JAEGER_URL``, when set, is the trace-link base, over the file's ``jaeger_url``
    (settings: arguments > environment > file > defaults).
    Raises ``ValueError`` (:class:`RuleError` for file contents) on anything invalid.
    """
    env = os.environ if environ is None else environ
    if isinstance(rules, AlertsConfig):
        cfg = rules
    elif rules is None:
        path = _settings.first(env.get(ENV_RULES))
        cfg = load_config(path, environ=env) if path else AlertsConfig(rules=default_rules())
    elif isinstance(rules, str | os.PathLike):
        cfg = load_config(rules, environ=env)
    else:
        items = list(rules) if isinstance(rules, Iterable) else [rules]
        if not all(isinstance(r, Rule) for r in items):
            raise ValueError("rules must be a path, an AlertsConfig or a list of Rule objects")
        cfg = AlertsConfig(rules=tuple(items))
    if notifiers is not None:
        cfg = replace(cfg, notifiers=_notifiers(notifiers, env))
    env_jaeger = _settings.first(env.get(ENV_JAEGER_URL))
    if env_jaeger:
        cfg = replace(cfg, jaeger_url=env_jaeger)
    return cfg


def _notifiers(value: Any, env: Mapping[str, str]) -> tuple[Any, ...]:
    if isinstance(value, str | os.PathLike):
        loaded = load_config(value, environ=env)
        return loaded.notifiers
    items = list(value) if isinstance(value, Iterable) else None
    if items is None or not all(
        isinstance(n, BaseModel) or callable(getattr(n, "send", None)) for n in items
    ):
        raise ValueError("notifiers must be a path or a list of notifier configs / objects")
    return tuple(items)


def _merge(parsed: _File, doc: _Doc) -> list[Rule]:
    issues: list[Issue] = []
    merged: dict[str, Rule] = {r.name: r for r in default_rules()} if parsed.include_defaults \
        else {}
    seen: set[str] = set()
    for i, rule in enumerate(parsed.rules):
        if rule.name in seen:
            issues.append(doc.issue(("rules", i, "name"), f"duplicate rule name {rule.name!r}"))
        seen.add(rule.name)
        merged[rule.name] = rule  # a rule named like a default replaces it
    for name, fields in parsed.overrides.items():
        base = merged.get(name)
        if base is None:
            issues.append(doc.issue(("overrides", name), f"no rule named {name!r} to override"))
            continue
        try:
            merged[name] = Rule.model_validate({**base.model_dump(by_alias=True), **fields})
        except ValidationError as exc:
            issues.extend(doc.issues(exc, prefix=("overrides", name)))
    if issues:
        raise RuleError(issues)
    return list(merged.values())


def _expand(value: Any, path: Path_, env: Mapping[str, str], doc: _Doc,
            issues: list[Issue]) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` from the environment; ``$${`` is a literal ``${``."""
    if isinstance(value, dict):
        return {k: _expand(v, (*path, k), env, doc, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*path, i), env, doc, issues) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is None or found == "":
            if default is not None:
                return default
            issues.append(doc.issue(path, f"environment variable {name} is not set"))
            return ""
        return found

    return _ENV_REF.sub(sub, value)


# --- locations ----------------------------------------------------------------------------------
class _Doc:
    """The parsed YAML plus its node tree, to turn a field path into a file line."""

    def __init__(self, source: str, data: dict[str, Any], root: yaml.Node | None) -> None:
        self.source = source
        self.data = data
        self.root = root

    @classmethod
    def parse(cls, text: str, source: str) -> _Doc:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            line = mark.line + 1 if mark is not None else None
            col = mark.column + 1 if mark is not None else None
            raise RuleError([Issue(source, line, col, "", f"invalid YAML: {problem}")]) from None
        finally:
            loader.dispose()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RuleError([Issue(source, 1, 1, "", "the file must be a mapping of sections")])
        return cls(source, data, root)

    def issue(self, path: Path_, message: str) -> Issue:
        node, matched, found_last = self._find(path)
        mark = node.start_mark if node is not None else None
        shown = list(matched)
        if path and not found_last:
            shown.append(path[-1])  # e.g. the missing field
        return Issue(
            self.source,
            mark.line + 1 if mark is not None else None,
            mark.column + 1 if mark is not None else None,
            _path_text(shown),
            message,
        )

    def issues(self, exc: ValidationError, prefix: Path_ = ()) -> list[Issue]:
        out = []
        for error in exc.errors(include_url=False, include_input=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            out.append(self.issue((*prefix, *error["loc"]), message))
        return out

    def _find(self, path: Path_) -> tuple[yaml.Node | None, list[str | int], bool]:
        node, matched, found = self.root, [], True
        for part in path:
            child = _child(node, part)
            found = child is not None
            if child is None:
                # Pydantic adds union tags (e.g. "slack") that are not in the document: skip.
                continue
            node = child
            matched.append(part)
        return node, matched, found


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
            and 0 <= part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _path_text(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def notifier_objects(config: AlertsConfig) -> list[Notifier]:
    """Build the notifiers of ``config`` (configs become notifiers; objects pass through)."""
    return [build_notifier(n) if isinstance(n, BaseModel) else n for n in config.notifiers]
