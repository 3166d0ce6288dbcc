"""prometheus.yml and alert-rules.yml: checked by the real promtool (Prometheus 2.42, Debian
package `prometheus`) and against the compose services they scrape."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    ALERT_RULES,
    CONFIG,
    container_path,
    gateway_settings,
    load_yaml,
    run,
    services,
    tool,
)

from otel_llm.alerts.cli import add_parser as add_rules_parser

PROMETHEUS_YML = CONFIG / "prometheus.yml"
PROMTOOL = tool("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian: apt-get install --no-install-recommends prometheus)",
)


@needs_promtool
def test_promtool_accepts_the_prometheus_config_and_its_rule_files() -> None:
    assert PROMTOOL is not None
    result = run([PROMTOOL, "check", "config", str(PROMETHEUS_YML)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    assert PROMTOOL is not None
    result = run([PROMTOOL, "check", "rules", str(ALERT_RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_the_export_of_the_default_rules(tmp_path: Path) -> None:
    """The committed file is exactly what `otel-llm rules export` writes today."""
    out = tmp_path / "alert-rules.yml"
    parser = argparse.ArgumentParser(prog="otel-llm")
    add_rules_parser(parser.add_subparsers())
    args = parser.parse_args(["rules", "export", "--format", "prometheus", "-o", str(out)])
    assert args.func(args) == 0
    assert ALERT_RULES.read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), (
        "collector-config/alert-rules.yml drifted from the default rules; regenerate it with\n"
        "  otel-llm rules export --format prometheus -o collector-config/alert-rules.yml")


def targets(job: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for static in job.get("static_configs", []):
        found.extend(static["targets"])
    for dns in job.get("dns_sd_configs", []):
        found.extend(f"{name}:{dns['port']}" for name in dns["names"])
    return found


def jobs() -> dict[str, list[str]]:
    config = load_yaml(PROMETHEUS_YML)
    return {job["job_name"]: targets(job) for job in config["scrape_configs"]}


def test_prometheus_scrapes_the_collector_and_the_gateway() -> None:
    found = jobs()
    stack = services()
    assert found["otel-collector"] == ["otel-collector:8889"]
    assert found["otel-collector-internal"] == ["otel-collector:8888"]
    assert found["otel-llm"] == [f"otel-llm:{gateway_settings().http_port}"]
    assert "demo" not in found  # the demo sends traces only; the gateway accounts its calls
    # Every target is a compose service that exposes (or publishes) the scraped port.
    for job, addresses in found.items():
        for address in addresses:
            host, port = address.rsplit(":", 1)
            if host == "localhost":
                continue
            assert host in stack, f"{job}: {host} is not a compose service"
            service = stack[host]
            offered = {str(p) for p in service.get("expose", [])}
            offered |= {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}
            assert port in offered, f"{job}: {host} does not expose {port}"


def test_collector_job_keeps_the_apps_job_labels() -> None:
    config = load_yaml(PROMETHEUS_YML)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "otel-collector"]
    assert job["honor_labels"] is True  # job/instance come from service.name/.instance.id


def test_prometheus_sends_alerts_to_alertmanager_and_loads_the_mounted_rules() -> None:
    config = load_yaml(PROMETHEUS_YML)
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "alertmanager" in services()
    assert config["rule_files"] == ["alert-rules.yml"]
    # In the container the rule file sits next to prometheus.yml, as the relative path needs.
    prometheus = services()["prometheus"]
    config_in_container = container_path(prometheus, PROMETHEUS_YML)
    rules_in_container = container_path(prometheus, ALERT_RULES)
    assert Path(rules_in_container).parent == Path(config_in_container).parent
    assert f"--config.file={config_in_container}" in prometheus["command"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
