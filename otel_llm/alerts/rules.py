"""Alert rules: the typed, validated model (DESIGN.md §5), durations and annotation templates.

A rule reads like a Prometheus alerting rule: ``metric op threshold`` over a ``window`` of
accounted calls, true for ``for`` before it fires, re-notified no sooner than ``cooldown``.
Loading rules from YAML (with file/line errors) lives in :mod:`otel_llm.alerts.config`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DIMENSIONS",
    "METRICS",
    "Rule",
    "Template",
    "format_duration",
    "format_value",
    "parse_duration",
]

Metric = Literal[
    "call_count",
    "error_rate",
    "cost_usd",
    "latency_avg",
    "latency_p95",
    "tokens",
    "retrieval_empty_rate",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}
Dimension = Literal["provider", "model", "project", "operation", "service"]
DIMENSIONS: tuple[str, ...] = Dimension.__args__  # type: ignore[attr-defined]
# Filters on the error of a call: they narrow which errors count, so only the metrics that
# count errors accept them.
ErrorField = Literal["error_category", "error_type"]
WhereKey = Literal[
    "provider", "model", "project", "operation", "service", "error_category", "error_type"
]
ERROR_FIELDS: frozenset[str] = frozenset(ErrorField.__args__)  # type: ignore[attr-defined]
CALENDAR_DAY = "calendar_day"
# Metrics that add up over a window (as opposed to ratios and averages).
_SUMS = frozenset({"call_count", "cost_usd", "tokens"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RESERVED_LABELS = frozenset({"alertname", "severity"})


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds or a Prometheus-style ``1h30m``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1h, 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 5m, 1h30m, 1d")
    else:
        raise ValueError("expected a duration like 30s, 5m, 1h, 1d")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be finite and >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` as the shortest Prometheus duration (``90`` → ``1m30s``, ``86400`` → ``1d``)."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


def format_value(metric: str, value: float | None) -> str:
    """A metric value as people read it: ``12.5%``, ``$101.20``, ``2.35s``, ``1,204``."""
    if value is None:
        return "n/a"
    if metric in ("error_rate", "retrieval_empty_rate"):
        return f"{value * 100:.4g}%"
    if metric == "cost_usd":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"
    if metric in ("latency_avg", "latency_p95"):
        return f"{value:.3g}s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


# --- annotation templates ---------------------------------------------------------------------
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_PLACEHOLDERS = frozenset({"value", "threshold", "metric", "window", "rule", "severity"})
_LABEL_PLACEHOLDER = re.compile(r"^labels\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Template:
    """A parsed annotation: literal text and ``{value}``, ``{threshold}``, ``{labels.x}`` …

    ``{{`` and ``}}`` are literal braces. Parsing rejects unknown placeholders, so a typo fails
    when the rule file loads rather than in a notification at 3 a.m.
    """

    parts: tuple[tuple[bool, str], ...]
    """``(is_placeholder, text)`` pairs; placeholder text is the name, e.g. ``labels.model``."""

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[tuple[bool, str]] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            if match.start() > pos:
                parts.append((False, text[pos : match.start()]))
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append((False, token[0]))
            else:
                name = (match.group(1) or "").strip()
                if name not in _PLACEHOLDERS and not _LABEL_PLACEHOLDER.match(name):
                    known = ", ".join("{" + p + "}" for p in sorted(_PLACEHOLDERS))
                    raise ValueError(f"unknown placeholder {token}: use {known} or {{labels.NAME}}")
                parts.append((True, name))
            pos = match.end()
        if pos < len(text):
            parts.append((False, text[pos:]))
        return cls(tuple(parts))

    def render(self, values: Mapping[str, str], labels: Mapping[str, str]) -> str:
        out = []
        for is_placeholder, text in self.parts:
            if not is_placeholder:
                out.append(text)
            elif text.startswith("labels."):
                out.append(labels.get(text[7:], ""))
            else:
                out.append(values.get(text, ""))
        return "".join(out)


# --- the rule ---------------------------------------------------------------------------------
class Rule(BaseModel):
    """One alert rule. Durations are stored in seconds; ``window`` may be ``"calendar_day"``.

    ``model`` means the requested model (``gen_ai.request.model``), except for ``cost_usd``,
    which is grouped and filtered by the model that was billed (``gen_ai.response.model``), as
    the ``otel_llm.cost`` metric is. ``where`` values are exact matches; a list matches any.
    ``where.error_category`` / ``where.error_type`` narrow which errors ``error_rate`` counts
    (the denominator stays all matching calls) and which calls ``call_count`` counts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    metric: Metric
    op: Op = ">"
    threshold: float
    window: float | Literal["calendar_day"] = 300.0
    for_: float = Field(default=0.0, alias="for")
    cooldown: float = 3600.0
    severity: Severity = "warning"
    group_by: tuple[Dimension, ...] = ()
    where: dict[WhereKey, tuple[str, ...]] = Field(default_factory=dict)
    min_calls: int = Field(default=0, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a Prometheus alert name: letters, digits and _")
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        # "5%" reads better than 0.05 for rates; both are accepted.
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError("expected a number or a percentage like 5%") from None
        return value

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if value == CALENDAR_DAY:
            return value
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError("a window must be at least 1s (or calendar_day)")
        return seconds

    @field_validator("for_", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("group_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("group_by")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a dimension twice")
        return value

    @field_validator("where", mode="before")
    @classmethod
    def _where(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("where")
    @classmethod
    def _where_values(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for key, values in value.items():
            if not values or any(not v for v in values):
                raise ValueError(f"{key}: needs one or more non-empty values")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _NAME.match(key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a valid label name")
            if key in _RESERVED_LABELS:
                raise ValueError(f"{key!r} is set by otel-llm; use the rule's field instead")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            try:
                Template.parse(text)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        errors = ERROR_FIELDS.intersection(self.where)
        if errors and self.metric not in ("error_rate", "call_count"):
            field = sorted(errors)[0]
            raise ValueError(f"where.{field} applies only to error_rate and call_count")
        if self.window == CALENDAR_DAY and self.metric not in _SUMS:
            raise ValueError("window: calendar_day applies to cost_usd, tokens and call_count")
        return self

    # -- derived -----------------------------------------------------------------------------
    @property
    def window_seconds(self) -> float:
        """The window's length; a calendar day counts as 86400 s."""
        return 86400.0 if self.window == CALENDAR_DAY else float(self.window)

    @property
    def calendar_day(self) -> bool:
        return self.window == CALENDAR_DAY

    @property
    def window_text(self) -> str:
        return CALENDAR_DAY if self.window == CALENDAR_DAY else format_duration(self.window_seconds)

    def templates(self) -> dict[str, Template]:
        """The annotations, parsed, with a default ``summary`` when the rule has none."""
        out = {key: Template.parse(text) for key, text in self.annotations.items()}
        if "summary" not in out:
            out["summary"] = Template.parse(
                "{rule}: {metric} is {value} over {window} (threshold " + self.op + " {threshold})"
            )
        return out

    def breached(self, value: float | None) -> bool:
        """Whether ``value`` crosses the threshold. No value (no data) never breaches."""
        if value is None:
            return False
        return _OPS[self.op](value, self.threshold)


_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
