from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from otel_llm.alerts import (
    RuleError,
    SlackConfig,
    default_rules,
    load_config,
    parse_config,
    resolve,
)
from otel_llm.alerts.cli import add_parser
from otel_llm.alerts.rules import Rule, Template, format_duration, parse_duration


def parse(text: str, **kwargs: object) -> object:
    return parse_config(textwrap.dedent(text), source="rules.yaml", **kwargs)  # type: ignore[arg-type]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="otel-llm")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("500ms", 0.5), (90, 90),
     ("2w", 1_209_600)],
)
def test_durations_read_like_prometheus(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "m5", "", "-1s", True, "1h 30m"])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_rule_fields_and_shorthands() -> None:
    rule = Rule.model_validate({
        "name": "HighErrors", "metric": "error_rate", "threshold": "5%", "window": "10m",
        "for": "2m", "cooldown": "30m", "group_by": "model",
        "where": {"provider": "openai", "error_category": ["external_service"]},
    })
    assert rule.threshold == pytest.approx(0.05)
    assert (rule.window, rule.for_, rule.cooldown) == (600, 120, 1800)
    assert rule.group_by == ("model",)
    assert rule.where == {"provider": ("openai",), "error_category": ("external_service",)}
    assert rule.breached(0.06) and not rule.breached(0.05) and not rule.breached(None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "bad name"}, "Prometheus alert name"),
        ({"metric": "p99"}, "Input should be"),
        ({"op": "=>"}, "Input should be"),
        ({"group_by": ["region"]}, "Input should be"),
        ({"where": {"error_type": "timeout"}, "metric": "latency_avg"},
         "applies only to error_rate and call_count"),
        ({"window": "calendar_day"}, "calendar_day applies to"),
        ({"labels": {"severity": "x"}}, "set by otel-llm"),
        ({"annotations": {"summary": "{valeu}"}}, "unknown placeholder {valeu}"),
        ({"min_calls": -1}, "greater than or equal to 0"),
        ({"threshold": "nan"}, "finite"),
    ],
)
def test_invalid_rules_say_why(fields: dict[str, object], message: str) -> None:
    base = {"name": "R", "metric": "error_rate", "threshold": 0.1}
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate({**base, **fields})


def test_templates_render_values_and_labels_and_escape_braces() -> None:
    template = Template.parse("{labels.model}: {value} > {threshold} {{literal}}")
    out = template.render({"value": "12%", "threshold": "5%"}, {"model": "gpt-4o"})
    assert out == "gpt-4o: 12% > 5% {literal}"


def test_broken_file_reports_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""\
        include_defaults: false
        rules:
          - name: Ok
            metric: call_count
            threshold: 1
          - name: Broken
            metric: error_rate
            threshold: lots
            window: 5 minutes
    """))
    with pytest.raises(RuleError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert any(f"{path}:8:" in line and "rules[1].threshold" in line for line in lines), lines
    assert any(f"{path}:9:" in line and "rules[1].window" in line for line in lines), lines
    assert isinstance(info.value, ValueError)


def test_missing_field_points_at_the_rule() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml:2:5: rules\[0\]\.threshold: Field required"):
        parse("""\
            rules:
              - name: NoThreshold
                metric: call_count
        """)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml:2:\d+: invalid YAML: mapping values"):
        parse("rules:\n  - name: a: b\n")


def test_defaults_are_included_and_overridable_without_copying() -> None:
    names = {r.name for r in default_rules()}
    assert names == {"LLMDailyCostHigh", "LLMErrorRateHigh", "LLMErrorRateCritical",
                     "LLMInferenceSlow", "RetrievalSlow", "EmbeddingServiceUnavailable"}
    cfg = parse("""\
        overrides:
          LLMDailyCostHigh: {threshold: 250}
          LLMInferenceSlow: {enabled: false}
        rules:
          - {name: Mine, metric: call_count, op: "<", threshold: 1}
    """)
    rules = {r.name: r for r in cfg.rules}  # type: ignore[attr-defined]
    assert rules["LLMDailyCostHigh"].threshold == 250
    assert rules["LLMDailyCostHigh"].window == 86400  # the rest of the default is kept
    assert rules["LLMInferenceSlow"].enabled is False
    assert "Mine" in rules and len(rules) == 7


def test_default_rules_mirror_the_design() -> None:
    rules = {r.name: r for r in default_rules()}
    cost = rules["LLMDailyCostHigh"]
    assert (cost.metric, cost.op, cost.threshold, cost.window, cost.severity) == (
        "cost_usd", ">", 100, 86400, "warning")
    warn, crit = rules["LLMErrorRateHigh"], rules["LLMErrorRateCritical"]
    assert (warn.threshold, warn.for_, warn.severity) == (0.05, 300, "warning")
    assert (crit.threshold, crit.severity) == (0.10, "critical")
    slow = rules["LLMInferenceSlow"]
    assert (slow.metric, slow.threshold, slow.severity) == ("latency_avg", 60, "warning")
    retrieval = rules["RetrievalSlow"]
    assert (retrieval.threshold, retrieval.for_, retrieval.where["operation"]) == (
        2, 600, ("retrieval",))
    embed = rules["EmbeddingServiceUnavailable"]
    assert (embed.metric, embed.threshold, embed.for_, embed.severity) == (
        "error_rate", 0.5, 120, "critical")


def test_override_errors_point_at_the_override() -> None:
    with pytest.raises(RuleError) as info:
        parse("""\
            overrides:
              LLMDailyCostHigh:
                threshold: cheap
              NoSuchRule: {threshold: 1}
        """)
    text = str(info.value)
    assert "rules.yaml:3:" in text and "overrides.LLMDailyCostHigh.threshold" in text
    assert "rules.yaml:4:" in text and "no rule named 'NoSuchRule'" in text


def test_duplicate_rule_names_are_rejected() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml:3:\d+: rules\[1\]\.name: duplicate"):
        parse("""\
            rules:
              - {name: A, metric: call_count, threshold: 1}
              - {name: A, metric: call_count, threshold: 2}
        """)


def test_notifier_secrets_come_from_env_and_are_never_shown() -> None:
    secret = "https://hooks.slack.com/services/T000/B000/SECRET"
    cfg = parse("""\
        notifiers:
          - type: slack
            url: ${SLACK_URL}
          - type: email
            host: ${SMTP_HOST:-localhost}
            from: alerts@example.com
            to: oncall@example.com
            password: ${SMTP_PASSWORD}
    """, environ={"SLACK_URL": secret, "SMTP_PASSWORD": "hunter2"})
    slack, email = cfg.notifiers  # type: ignore[attr-defined]
    assert isinstance(slack, SlackConfig)
    assert slack.url.get_secret_value() == secret
    assert email.host == "localhost" and email.min_severity == "critical"
    assert email.password.get_secret_value() == "hunter2"
    assert "SECRET" not in repr(cfg) and "hunter2" not in repr(cfg)


def test_unset_env_and_bad_urls_fail_without_echoing_values() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml:3:\d+: notifiers\[0\]\.url: environment "
                                        r"variable SLACK_URL is not set"):
        parse("""\
            notifiers:
              - type: slack
                url: ${SLACK_URL}
        """, environ={})
    with pytest.raises(RuleError) as info:
        parse("""\
            notifiers:
              - type: webhook
                url: ${HOOK}
        """, environ={"HOOK": "ftp://secret-token@example"})
    assert "notifiers[0].url: must be an http" in str(info.value)
    assert "secret-token" not in str(info.value)


def test_resolve_sources(tmp_path: Path) -> None:
    assert {r.name for r in resolve(environ={}).rules} == {r.name for r in default_rules()}
    path = tmp_path / "r.yaml"
    path.write_text("include_defaults: false\nrules:\n"
                    "  - {name: A, metric: call_count, threshold: 1}\n")
    assert [r.name for r in resolve(environ={"OTEL_LLM_RULES": str(path)}).rules] == ["A"]
    only = Rule(name="B", metric="call_count", threshold=3)
    cfg = resolve([only], environ={"OTEL_LLM_JAEGER_URL": "http://jaeger:16686"})
    assert cfg.rules == (only,) and cfg.jaeger_url == "http://jaeger:16686"
    # Settings precedence: the environment over the file.
    linked = tmp_path / "linked.yaml"
    linked.write_text("jaeger_url: http://from-file:16686\nrules: []\n")
    assert resolve(linked, environ={}).jaeger_url == "http://from-file:16686"
    cfg = resolve(linked, environ={"OTEL_LLM_JAEGER_URL": "http://from-env:16686"})
    assert cfg.jaeger_url == "http://from-env:16686"
    with pytest.raises(ValueError, match="rules must be"):
        resolve(42)
    with pytest.raises(ValueError, match="cannot read rules file"):
        resolve(tmp_path / "missing.yaml")


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - {name: A, metric: tokens, threshold: 1e6, window: 1h}\n")
    assert run_cli("rules", "check", str(good)) == 0
    assert "OK: 7 rules enabled" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: A, metric: tokens, threshold: 1, severity: urgent}\n")
    assert run_cli("rules", "check", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "rules[0].severity" in err


def test_public_api_is_curated() -> None:
    import otel_llm.alerts as alerts

    assert len(set(alerts.__all__)) == len(alerts.__all__)
    for name in alerts.__all__:
        assert getattr(alerts, name) is not None
    public = {n for n in dir(alerts) if not n.startswith("_")}
    modules = {"config", "evaluator", "export", "notifiers", "payloads", "rules", "service",
               "worker", "cli"}
    assert public - modules == set(alerts.__all__)
