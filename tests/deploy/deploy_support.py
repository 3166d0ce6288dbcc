"""Shared helpers for the deployment-file tests: paths, YAML, tools, PromQL names, compose."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otel_llm.gateway.cli import add_parser
from otel_llm.gateway.config import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "collector-config"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "otel-llm.json"
ALERT_RULES = CONFIG / "alert-rules.yml"
COLLECTOR_CONFIGS = ("otelcol.yaml", "otelcol-direct.yaml", "otelcol-loadbalancing.yaml")

# Series Prometheus makes itself: allowed in PromQL without an exporter producing them.
PROMETHEUS_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE", "up"})
# Labels Prometheus adds at scrape time.
SCRAPE_LABELS = frozenset({"job", "instance"})


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def tool(name: str) -> str | None:
    return shutil.which(name)


def run(cmd: Sequence[str], *, timeout: float = 120,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=ROOT, env=dict(env) if env is not None else None)


def compose_command() -> list[str] | None:
    """``docker-compose`` (Debian package) or the ``docker compose`` plugin, if installed."""
    legacy = tool("docker-compose")
    if legacy:
        return [legacy]
    docker = tool("docker")
    if docker and run([docker, "compose", "version"], timeout=30).returncode == 0:
        return [docker, "compose"]
    return None


# --- docker-compose.yml ----------------------------------------------------------------------
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def substitute(text: str, env: Mapping[str, str] | None = None) -> str:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` interpolation (defaults unless in env)."""
    env = env or {}
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    text = substitute(COMPOSE_FILE.read_text(encoding="utf-8"), env)
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def services(env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = compose(env)["services"]
    assert isinstance(result, dict)
    return result


def gateway_settings() -> GatewaySettings:
    """The compose file's `otel-llm serve` command, parsed and validated by the gateway's CLI."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(services()["otel-llm"]["command"])
    return GatewaySettings.resolve(vars(args), environ={})


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: str | None
    target: str


def ports(service: Mapping[str, Any]) -> list[Port]:
    """The ``ports:`` of a service, short ("IP:HOST:CONTAINER/proto") or long syntax."""
    out: list[Port] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append(Port(entry.get("host_ip"), str(entry.get("published") or "") or None,
                            str(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append(Port(parts[0].strip("[]"), parts[1] or None, parts[2]))
        elif len(parts) == 2:
            out.append(Port(None, parts[0], parts[1]))
        else:
            out.append(Port(None, None, parts[0]))
    return out


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    bind: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    out: list[Mount] = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
        else:
            source, target = str(entry).split(":")[:2]
        out.append(Mount(source, target, source.startswith((".", "/"))))
    return out


def bind_source(mount: Mount) -> Path:
    return (ROOT / mount.source).resolve()


def container_path(service: Mapping[str, Any], host_path: Path) -> str:
    """Where ``host_path`` appears inside the service's container (bind mounts only)."""
    host_path = host_path.resolve()
    for mount in mounts(service):
        if not mount.bind:
            continue
        source = bind_source(mount)
        if host_path == source:
            return mount.target
        if source in host_path.parents:
            return mount.target.rstrip("/") + "/" + host_path.relative_to(source).as_posix()
    raise AssertionError(f"{host_path} is not mounted into the service")


# --- PromQL -----------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                       "and", "or", "unless", "offset", "inf", "nan", "Inf", "NaN"})
# label_replace(v, "dst", "replacement", "src", "regex"): the four string arguments at its end.
_LABEL_REPLACE_DESTINATION = re.compile(
    r'"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*"\w*"\s*,\s*"(?:[^"\\]|\\.)*"\s*\)')
_GRAFANA_DURATION = re.compile(r"\$\{?__(?:rate_interval|interval|range)(?:_ms|_s)?\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, so Prometheus tools can parse it."""
    expr = _GRAFANA_DURATION.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub("x", expr)


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


@dataclass(frozen=True)
class PromQL:
    selectors: tuple[Selector, ...]
    grouping: frozenset[str]
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    made: frozenset[str]
    """Labels the expression creates itself (label_replace's destination)."""

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)


def parse_promql(expr: str) -> PromQL:
    """Metric names and label names a PromQL expression uses (a scanner, not a full parser:
    enough for the expressions we ship, which promtool parses for real)."""
    made = frozenset(_LABEL_REPLACE_DESTINATION.findall(expr))
    # Matchers first, while their string values are still in place to delimit them.
    without_strings = _STRING.sub('""', expr)
    selectors: list[Selector] = []

    def selector(match: re.Match[str]) -> str:
        name = match.group(1)
        labels = frozenset(_MATCHER_LABEL.findall(match.group(2)))
        if name and name not in _KEYWORDS:
            selectors.append(Selector(name, labels))
            return " "
        return (name or "") + " "

    rest = _SELECTOR.sub(selector, without_strings)
    rest = _RANGE.sub(" ", rest)
    grouping: set[str] = set()
    for _, names in _GROUPING.findall(rest):
        grouping.update(n.strip() for n in names.split(",") if n.strip())
    rest = _GROUPING.sub(" ", rest)
    rest = _STRING.sub(" ", rest)
    rest = _NUMBER.sub(" ", rest)
    for match in _IDENT.finditer(rest):
        name = match.group(0)
        followed_by_call = re.match(r"\s*\(", rest[match.end():]) is not None
        if name in _KEYWORDS or followed_by_call:
            continue
        selectors.append(Selector(name, frozenset()))
    return PromQL(tuple(selectors), frozenset(grouping), made)


# --- the shipped PromQL ---------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every Prometheus template variable."""
    dash = dashboard()
    out: list[tuple[str, str]] = []
    for panel in panels(dash):
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((f"panel {panel['id']} {panel.get('title')!r} {target['refId']}",
                            target["expr"]))
    for variable in dash.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query if isinstance(query, str) else query.get("query", "")
        inner = _LABEL_VALUES.match(text)
        if inner:
            out.append((f"variable {variable['name']}", inner.group(1)))
    return out


def rule_queries() -> list[tuple[str, str]]:
    rules = load_yaml(ALERT_RULES)
    return [(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]


def promtool_rule_file(queries: Sequence[tuple[str, str]], path: Path) -> Path:
    """Write ``queries`` as recording rules, for ``promtool check rules`` to parse."""
    rules = [{"record": f"shipped:query_{i}", "expr": grafana_to_promql(expr)}
             for i, (_, expr) in enumerate(queries)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "shipped", "rules": rules}]}),
                    encoding="utf-8")
    return path


def environ_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
