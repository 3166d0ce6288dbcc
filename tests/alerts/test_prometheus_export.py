from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import otel_llm
from otel_llm import _runtime
from otel_llm.alerts import Evaluator, Rule, default_rules, to_prometheus
from otel_llm.alerts.cli import add_parser
from otel_llm.alerts.export import rule_expression
from otel_llm.metrics import Instruments
from tests.alert_fixtures import (
    RATE_LIMIT,
    SERVER_ERROR,
    FakeClock,
    free_port,
    record,
    wait_for,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")

# One exportable rule per metric, with filters and grouping, to check the PromQL and the names.
EVERY_METRIC = [
    Rule(name="Calls", metric="call_count", op="<", threshold=1, window="10m"),
    Rule(name="RateLimited", metric="call_count", threshold=10,
         where={"error_type": "rate_limit"}, group_by=["provider"]),
    Rule(name="Errors", metric="error_rate", threshold=0.05, min_calls=20,
         group_by=["provider", "model"], where={"operation": ["chat", "text_completion"]}),
    Rule(name="ExternalErrors", metric="error_rate", threshold=0.1,
         where={"error_category": "external_service"}, group_by=["provider"]),
    Rule(name="Spend", metric="cost_usd", threshold=50, window="1h",
         group_by=["project", "model"]),
    Rule(name="SlowAvg", metric="latency_avg", threshold=10, min_calls=3,
         group_by=["model"]),
    Rule(name="SlowP95", metric="latency_p95", threshold=30, group_by=["provider"]),
    Rule(name="Tokens", metric="tokens", threshold=1e6, window="1h", group_by=["model"]),
    Rule(name="EmptyRetrievals", metric="retrieval_empty_rate", threshold=0.2, min_calls=5),
]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="otel-llm")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"metric": "cost_usd", "window": "calendar_day"}, "no calendar-aligned window"),
        ({"metric": "latency_avg", "group_by": ["project"]}, "has no project label"),
        ({"metric": "error_rate", "where": {"error_category": "validation"},
          "group_by": ["model"]}, "served model"),
        ({"metric": "cost_usd", "min_calls": 5}, "no exported metric counts priced calls"),
    ],
)
def test_rules_prometheus_cannot_express_are_reported_not_exported(
        fields: dict[str, Any], reason: str) -> None:
    rule = Rule.model_validate({"name": "X", "threshold": 1, **fields})
    result = to_prometheus([rule])
    assert result.groups == {"groups": [{"name": "otel-llm", "rules": []}]}
    (skipped,) = result.skipped
    assert skipped.rule == "X" and reason in skipped.reason
    assert f"# NOT EXPORTED X: {skipped.reason}" in result.to_yaml()


def test_export_carries_for_labels_and_annotations() -> None:
    rule = Rule.model_validate({
        "name": "Errs", "metric": "error_rate", "threshold": 0.1, "for": "5m",
        "group_by": ["model"], "labels": {"team": "ml"},
        "annotations": {"summary": "{labels.model} ({labels.team}): {value} > {threshold}"},
    })
    (exported,) = to_prometheus([rule]).groups["groups"][0]["rules"]  # type: ignore[index]
    assert exported["for"] == "5m"
    assert exported["labels"] == {"severity": "warning", "team": "ml"}
    assert exported["annotations"]["summary"] == (
        "{{ $labels.model }} (ml): {{ $value | humanizePercentage }} > 10%")
    assert 'label_replace(' in exported["expr"] and '"model", "$1", "gen_ai_request_model"' \
        in exported["expr"]


def test_exported_names_and_labels_match_what_otel_llm_exports() -> None:
    """Every metric and label an exported expression reads exists in the real exposition."""
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    instruments = Instruments(provider)
    instruments.record(record(0, project="p1", tokens=(10, 5)))
    instruments.record(record(0, error=SERVER_ERROR, cost=None))
    instruments.record(record(0, operation="retrieval", provider="", model="", documents=0,
                              cost=None))
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    provider.shutdown()

    for rule in EVERY_METRIC:
        expr = rule_expression(rule)
        for name, matchers in re.findall(r"([a-z_]+)(?:\{([^}]*)\})?\[", expr):
            assert name in series, (rule.name, name)
            for label in re.findall(r"([a-z_]+)(?:=|!=|=~)", matchers):
                assert label in series[name], (rule.name, name, label)
        for grouping in re.findall(r"(?:by|on)\s*\(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in grouping.split(","))):
                # `job` comes from the scrape / the Collector, not from the exposition.
                assert label in {"le", "job"} or any(label in s for s in series.values()), label


@needs_promtool
def test_promtool_accepts_every_exported_rule(tmp_path: Path) -> None:
    result = to_prometheus([*default_rules(), *EVERY_METRIC])
    assert result.skipped == ()
    (tmp_path / "rules.yml").write_text(result.to_yaml())
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout


@needs_promtool
def test_exported_error_rate_rule_fires_in_prometheus_as_ours_does(tmp_path: Path) -> None:
    rule = Rule.model_validate({
        "name": "LLMErrors", "metric": "error_rate", "threshold": 0.25, "window": "5m",
        "for": "2m", "min_calls": 20, "group_by": ["provider", "model"],
        "annotations": {"summary": "{labels.provider} {labels.model} error rate above "
                                   "{threshold}"},
    })
    (tmp_path / "rules.yml").write_text(to_prometheus([rule]).to_yaml())

    # Per minute: gpt-4o serves 10 calls, and from minute 11 to 30 also fails 5 (server
    # errors and rate limits); gpt-4o-mini only succeeds.
    def failures(minute: int) -> int:
        return 5 if 11 <= minute <= 30 else 0

    clock = FakeClock(0.0)
    ev = Evaluator([rule], clock=clock)
    ours: dict[int, list[dict[str, str]]] = {}
    for minute in range(0, 46):
        clock.t = minute * 60.0
        for _ in range(10):
            ev.observe(record(clock.t))
            ev.observe(record(clock.t, model="gpt-4o-mini"))
        for i in range(failures(minute)):
            ev.observe(record(clock.t, error=SERVER_ERROR if i % 2 else RATE_LIMIT))
        ev.tick()
        ours[minute] = [dict(a.labels) | {"summary": a.annotations["summary"]}
                        for a in ev.active() if a.state == "firing"]

    def counter(minute: int, per_minute: Any) -> str:
        total, values = 0, []
        for m in range(0, minute + 1):
            total += per_minute(m)
            values.append(str(total))
        return " ".join(values)

    base = 'gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="chat",' \
           'gen_ai_provider_name="openai",'
    series = [
        {"series": base + 'gen_ai_request_model="gpt-4o",error_type=""}',
         "values": counter(45, lambda m: 10)},
        {"series": base + 'gen_ai_request_model="gpt-4o-mini",error_type=""}',
         "values": counter(45, lambda m: 10)},
        {"series": base + 'gen_ai_request_model="gpt-4o",error_type="server_error"}',
         "values": counter(45, lambda m: failures(m) // 2)},
        {"series": base + 'gen_ai_request_model="gpt-4o",error_type="rate_limit"}',
         "values": counter(45, lambda m: failures(m) - failures(m) // 2)},
    ]
    # Compare where the answer is settled (not on the minutes where Prometheus' rate()
    # extrapolation and our buckets cross the threshold a minute apart).
    checks = [5, 12, 20, 25, 30, 40, 45]
    assert [bool(ours[m]) for m in checks] == [False, False, True, True, True, False, False]
    tests = []
    for minute in checks:
        expected = [
            {"exp_labels": {k: v for k, v in a.items() if k not in ("alertname", "summary")}
             | {"gen_ai_provider_name": a["provider"], "gen_ai_request_model": a["model"]},
             "exp_annotations": {"summary": a["summary"]}}
            for a in ours[minute]
        ]
        tests.append({"eval_time": f"{minute}m", "alertname": "LLMErrors",
                      "exp_alerts": expected})
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
    }, sort_keys=False))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("rules", "export", "--format", "prometheus") == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert [r["alert"] for r in out["groups"][0]["rules"]] == [r.name for r in default_rules()]

    rules = tmp_path / "rules.yaml"
    rules.write_text("""\
include_defaults: false
rules:
  - {name: Budget, metric: cost_usd, threshold: 10, window: calendar_day}
  - {name: Calls, metric: call_count, op: "<", threshold: 1}
notifiers:
  - {type: slack, url: "${NOT_SET_HERE}"}
""")
    target = tmp_path / "out.yml"
    assert run_cli("rules", "export", str(rules), "-o", str(target)) == 1
    err = capsys.readouterr().err
    assert "not exported: Budget: PromQL has no calendar-aligned window" in err
    exported = yaml.safe_load(target.read_text())
    assert [r["alert"] for r in exported["groups"][0]["rules"]] == ["Calls"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - {name: X, metric: nope, threshold: 1}\n")
    assert run_cli("rules", "export", str(broken)) == 2
    assert f"{broken}:2:" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="Prometheus not installed (Debian package prometheus)")
def test_real_prometheus_fires_the_exported_rule_on_our_metrics(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrape otel-llm's own /metrics with a real Prometheus running the exported rule: it fires
    on the same failing calls as the in-process evaluator, with the same labels."""
    monkeypatch.delenv("OTEL_LLM_RULES", raising=False)
    rule = Rule.model_validate({"name": "Failing", "metric": "error_rate", "threshold": 0.5,
                                "window": "30s", "group_by": ["provider", "model"]})
    (tmp_path / "rules.yml").write_text(to_prometheus([rule]).to_yaml())
    registry = CollectorRegistry()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "app", "static_configs": [
            {"targets": [f"127.0.0.1:{server.server_port}"]}]}],
    }))
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    tel = otel_llm.configure(rules=[rule], meter_provider=meter_provider,
                             tracer_provider=TracerProvider(), instrument=False)
    try:
        def firing() -> list[dict[str, Any]]:
            # Fail calls continuously: rate() needs the counter to grow between scrapes.
            for _ in range(3):
                with pytest.raises(RuntimeError), otel_llm.llm_call("openai", "gpt-4o"):
                    raise RuntimeError("upstream down")
            assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=1)
            except httpx.HTTPError:
                return []
            if response.status_code != 200:  # still starting up
                return []
            return [a for a in response.json()["data"]["alerts"] if a["state"] == "firing"]

        (prom_alert,) = wait_for(firing, timeout=30, step=0.2)
        alerts = tel.alerts
        assert alerts is not None
        (ours,) = wait_for(lambda: [a for a in alerts.active() if a.state == "firing"])
        assert {k: prom_alert["labels"][k] for k in ours.labels} == dict(ours.labels)
    finally:
        tel.shutdown()
        prometheus.terminate()
        prometheus.wait(10)
        log.close()
        server.shutdown()
        server.server_close()
        meter_provider.shutdown()
        _runtime.install(None)
