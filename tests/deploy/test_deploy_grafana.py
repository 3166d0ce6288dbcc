"""Grafana provisioning and the otel-llm dashboard: well-formed, wired to the provisioned data
sources, every query parsed by the real promtool, and covering what the dashboard promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    CONFIG,
    DASHBOARD,
    container_path,
    dashboard,
    dashboard_queries,
    load_yaml,
    panels,
    parse_promql,
    promtool_rule_file,
    run,
    services,
    tool,
)

PROVISIONING = CONFIG / "grafana" / "provisioning"
PROMTOOL = tool("promtool")


def datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        config = load_yaml(path)
        assert config["apiVersion"] == 1, path
        for ds in config["datasources"]:
            assert ds["uid"] not in found, f"duplicate data source uid {ds['uid']}"
            found[ds["uid"]] = ds
    return found


def test_prometheus_and_jaeger_data_sources_point_at_the_compose_services() -> None:
    sources = datasources()
    stack = services()
    assert {ds["type"] for ds in sources.values()} == {"prometheus", "jaeger"}
    for ds in sources.values():
        host, port = ds["url"].removeprefix("http://").split(":")
        assert host in stack, ds["url"]
        offered = {str(p) for p in stack[host].get("expose", [])}
        offered |= {str(p).rsplit(":", 1)[-1] for p in stack[host].get("ports", [])}
        assert port in offered, ds["url"]
    (default,) = [ds for ds in sources.values() if ds.get("isDefault")]
    assert default["type"] == "prometheus"


def test_exemplars_link_to_jaeger() -> None:
    sources = datasources()
    (prometheus,) = [ds for ds in sources.values() if ds["type"] == "prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    jaeger_uids = {uid for uid, ds in sources.items() if ds["type"] == "jaeger"}
    assert any(d.get("datasourceUid") in jaeger_uids for d in destinations)
    for d in destinations:
        # The collector's prometheus exporter names the exemplar label trace_id.
        assert d["name"] == "trace_id"
        if "url" in d:
            # Grafana expands $VAR in provisioning files: $$ keeps the link's ${__value.raw}.
            assert d["url"].endswith("/trace/$${__value.raw}"), d["url"]


def test_dashboard_provider_loads_the_mounted_dashboards() -> None:
    config = load_yaml(PROVISIONING / "dashboards" / "otel-llm.yaml")
    (provider,) = config["providers"]
    grafana = services()["grafana"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == container_path(grafana, DASHBOARD.parent)
    for kind in ("datasources", "dashboards"):
        assert container_path(grafana, PROVISIONING / kind) == f"/etc/grafana/provisioning/{kind}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == container_path(grafana, DASHBOARD)


def test_dashboard_is_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] == "otel-llm"
    sources = datasources()
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels(dash):
        assert panel["datasource"]["uid"] in sources, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] in sources, panel["title"]
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        boxes.append((g["x"], g["y"], g["w"], g["h"], panel["title"]))
    for i, (x, y, w, h, title) in enumerate(boxes):
        for x2, y2, w2, h2, title2 in boxes[i + 1:]:
            overlap = x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h
            assert not overlap, f"{title!r} overlaps {title2!r}"
    for variable in dash["templating"]["list"]:
        assert variable["datasource"]["uid"] in sources, variable["name"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed "
                    "(Debian: apt-get install --no-install-recommends prometheus)")
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = promtool_rule_file(dashboard_queries(), tmp_path / "dashboard-queries.yml")
    result = run([PROMTOOL, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr


def queries_by_title() -> dict[str, list[dict[str, Any]]]:
    return {p["title"]: p.get("targets", []) for p in panels(dashboard())}


def find(metric: str, *, grouped_by: str | None = None, quantile: str | None = None
         ) -> list[dict[str, Any]]:
    found = []
    for targets in queries_by_title().values():
        for target in targets:
            query = parse_promql(target["expr"])
            if metric not in query.metrics:
                continue
            if grouped_by and grouped_by not in query.grouping:
                continue
            if quantile and f"histogram_quantile({quantile}," not in target["expr"]:
                continue
            found.append(target)
    return found


@pytest.mark.parametrize(("what", "metric", "grouped_by", "quantile"), [
    ("cost per model", "otel_llm_cost_usd_total", "gen_ai_response_model", None),
    ("cost per project", "otel_llm_cost_usd_total", "otel_llm_project_id", None),
    ("tokens", "gen_ai_client_token_usage_sum", "gen_ai_token_type", None),
    ("error rate by category", "otel_llm_errors_total", "otel_llm_error_category", None),
    ("latency p50", "gen_ai_client_operation_duration_seconds_bucket", None, "0.5"),
    ("latency p95", "gen_ai_client_operation_duration_seconds_bucket", None, "0.95"),
    ("time to first chunk p50",
     "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", None, "0.5"),
    ("time to first chunk p95",
     "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", None, "0.95"),
    ("firing alerts (otel-llm)", "otel_llm_alerts_firing", "rule", None),
    ("firing alerts (Prometheus)", "ALERTS", "alertname", None),
])
def test_dashboard_shows(what: str, metric: str, grouped_by: str | None,
                         quantile: str | None) -> None:
    assert find(metric, grouped_by=grouped_by, quantile=quantile), what


def test_latency_and_cost_panels_show_exemplars() -> None:
    for metric in ("gen_ai_client_operation_duration_seconds_bucket",
                   "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
                   "otel_llm_cost_usd_total"):
        assert any(t.get("exemplar") for t in find(metric)), metric


def test_every_metrics_panel_follows_the_source_variable() -> None:
    """One source of metrics at a time: the same calls may be exported by several jobs."""
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert "job" in variables
    for title, targets in queries_by_title().items():
        for target in targets:
            if "ALERTS" in parse_promql(target["expr"]).metrics:
                continue
            assert 'job=~"$job"' in target["expr"], title
