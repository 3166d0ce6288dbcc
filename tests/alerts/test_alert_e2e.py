"""In-process alerting end to end: real openai client, hooks, configure(), loopback receivers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm import _runtime
from tests.alert_fixtures import Receiver, free_port, wait_for
from tests.conftest import Harness, make_harness

ZERO_TIME = "0001-01-01T00:00:00Z"
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


@pytest.fixture
def alerting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Harness]]:
    """Build a harness with alerting settings; shut everything down afterwards."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_LLM_PRICES", "OTEL_LLM_RULES", "OTEL_LLM_JAEGER_URL"):
        monkeypatch.delenv(name, raising=False)
    made: list[Harness] = []

    def build(**kwargs: Any) -> Harness:
        h = make_harness(**kwargs)
        made.append(h)
        return h

    yield build
    for h in made:
        h.telemetry.shutdown()
        h.tracer_provider.shutdown()
        h.meter_provider.shutdown()
    _runtime.install(None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class FakeOpenAI:
    """The real openai client over a mock transport whose status we set."""

    def __init__(self) -> None:
        self.status = 200
        self.client = openai.OpenAI(
            api_key="sk-test", base_url="http://127.0.0.1/v1", max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=httpx2.MockTransport(self._handle)),
        )

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        if self.status != 200:
            return httpx2.Response(self.status, json={"error": {"message": "upstream failed",
                                                                "type": "server_error"}})
        return httpx2.Response(200, json=COMPLETION)

    def chat(self) -> None:
        with otel_llm.llm_call("openai", "gpt-4o-mini") as call:
            response = self.client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
            assert response.usage is not None
            call.record_usage(input_tokens=response.usage.prompt_tokens,
                              output_tokens=response.usage.completion_tokens)
            call.set_response(model=response.model, response_id=response.id)


def gauge(h: Harness, rule: str) -> float | None:
    values = [p.value for p in h.points("otel_llm.alerts.firing")
              if p.attributes.get("rule") == rule]
    return values[0] if values else None


def notification_outcomes(h: Harness) -> dict[tuple[str, str], int]:
    return {(str(p.attributes["notifier"]), str(p.attributes["outcome"])): int(p.value)
            for p in h.points("otel_llm.alerts.notifications")}


def test_failing_openai_calls_fire_and_successes_resolve(
        alerting: Callable[..., Harness], receiver: Receiver, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", receiver.url)
    rules = tmp_path / "rules.yaml"
    rules.write_text("""\
include_defaults: false
evaluation_interval: 100ms
jaeger_url: http://jaeger.example:16686
rules:
  - name: OpenAIErrors
    metric: error_rate
    threshold: 50%
    window: 5m
    min_calls: 4
    group_by: [provider, model]
    severity: critical
    annotations:
      summary: "{labels.model} failing: {value}"
notifiers:
  - {type: webhook, name: ops, url: "${HOOK_URL}/hook"}
""")
    h = alerting(rules=str(rules))
    api = FakeOpenAI()
    for status in (500, 429, 500, 429, 500):
        api.status = status
        with pytest.raises((openai.InternalServerError, openai.RateLimitError)):
            api.chat()

    (firing,) = wait_for(lambda: [b for b in receiver.received() if b["status"] == "firing"])
    (alert,) = firing["alerts"]
    assert alert["labels"] == {"alertname": "OpenAIErrors", "severity": "critical",
                               "provider": "openai", "model": "gpt-4o-mini"}
    assert alert["annotations"]["summary"] == "gpt-4o-mini failing: 100%"
    assert alert["endsAt"] == ZERO_TIME
    failed_traces = {f"{s.context.trace_id:032x}" for s in h.spans()
                     if s.status.status_code is StatusCode.ERROR}
    sampled = alert["annotations"]["trace_ids"].split(",")
    assert len(failed_traces) == 5 and sampled and set(sampled) <= failed_traces
    links = alert["annotations"]["trace_links"].split(" ")
    assert links == [f"http://jaeger.example:16686/trace/{t}" for t in sampled]
    assert [a.state for a in h.telemetry.alerts.active()] == ["firing"]  # type: ignore[union-attr]
    assert gauge(h, "OpenAIErrors") == 1

    api.status = 200
    for _ in range(10):  # 5 failures of 15 calls: below 50%
        api.chat()
    (resolved,) = wait_for(lambda: [b for b in receiver.received()
                                    if b["status"] == "resolved"])
    assert resolved["alerts"][0]["endsAt"] != ZERO_TIME
    assert resolved["alerts"][0]["annotations"]["trace_ids"] == ",".join(sampled)
    alerts = h.telemetry.alerts
    assert alerts is not None and alerts.active() == []
    assert [a.state for a in alerts.history()] == ["resolved"]
    assert gauge(h, "OpenAIErrors") == 0
    wait_for(lambda: notification_outcomes(h).get(("ops", "success")) == 2)


def test_failing_notifiers_slow_nothing(alerting: Callable[..., Harness], tmp_path: Path) -> None:
    broken = Receiver(status=500)
    dead = f"http://127.0.0.1:{free_port()}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""\
include_defaults: false
evaluation_interval: 50ms
delivery: {{initial_backoff: 5s, max_attempts: 3}}
rules:
  - {{name: AnyError, metric: error_rate, threshold: 0, cooldown: 0s, severity: critical}}
notifiers:
  - {{type: webhook, name: dead, url: "{dead}"}}
  - {{type: slack, name: broken, url: "{broken.url}"}}
""")
    try:
        h = alerting(rules=str(rules))

        def failing_call() -> float:
            started = time.perf_counter()
            with pytest.raises(RuntimeError), otel_llm.llm_call("openai", "gpt-4o"):
                raise RuntimeError("boom")
            return time.perf_counter() - started

        failing_call()
        # Both notifiers failed once and now sit in a 5 s backoff, with a new notification
        # queued every 50 ms behind them.
        wait_for(lambda: {("dead", "retry"), ("broken", "retry")}
                 <= set(notification_outcomes(h)))
        latencies = [failing_call() for _ in range(20)]
        assert max(latencies) < 0.25 and sum(latencies) < 1.0  # far below the retry delay
        assert broken.received()  # it was really called

        started = time.monotonic()
        h.telemetry.shutdown()  # wakes the backoff instead of waiting it out
        assert time.monotonic() - started < 3.0
        counts = notification_outcomes(h)
        assert counts[("dead", "failure")] >= 1 and counts[("broken", "failure")] >= 1
    finally:
        broken.close()


def test_configure_wiring(alerting: Callable[..., Harness], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    h = alerting()
    alerts = h.telemetry.alerts
    assert alerts is not None
    assert {r.name for r in alerts.evaluator.rules} == {r.name for r in
                                                        otel_llm.alerts.default_rules()}
    assert alerts.active() == [] and alerts.history() == []

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: X, metric: error_rate, threshold: high}\n")
    with pytest.raises(ValueError, match=rf"{bad}:2:\d+: rules\[0\]\.threshold"):
        otel_llm.configure(rules=str(bad), tracer_provider=h.tracer_provider,
                           meter_provider=h.meter_provider, instrument=False)
    monkeypatch.setenv("OTEL_LLM_RULES", str(bad))
    with pytest.raises(ValueError, match="rules\\[0\\]\\.threshold"):
        otel_llm.configure(tracer_provider=h.tracer_provider,
                           meter_provider=h.meter_provider, instrument=False)

    only = otel_llm.alerts.Rule(name="Mine", metric="call_count", threshold=1)
    monkeypatch.delenv("OTEL_LLM_RULES")
    h2 = alerting(rules=[only], notifiers=[])
    assert h2.telemetry.alerts is not None
    assert h2.telemetry.alerts.evaluator.rules == (only,)
    h2.telemetry.shutdown()
    h2.telemetry.shutdown()  # idempotent
