"""Our Alertmanager notifier against a real Alertmanager (Debian prometheus-alertmanager)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_llm.alerts import AlertmanagerNotifier, AlertService, Evaluator, NotifierWorker, Rule
from tests.alert_fixtures import (
    SERVER_ERROR,
    Alertmanager,
    Receiver,
    alertmanager_binary,
    record,
    run_alertmanager,
    wait_for,
)

BINARY = alertmanager_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="Alertmanager not installed (Debian package prometheus-alertmanager)",
)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alertmanager(tmp_path: Path, hook: Receiver) -> Iterator[Alertmanager]:
    assert BINARY is not None
    yield from run_alertmanager(BINARY, tmp_path, hook.url)


def delivered(hook: Receiver, status: str) -> list[dict[str, Any]]:
    return [b for b in hook.received() if b.get("status") == status]


def test_alertmanager_receives_routes_and_resolves_our_alert(
        alertmanager: Alertmanager, hook: Receiver) -> None:
    rule = Rule.model_validate({"name": "OpenAIErrors", "metric": "error_rate",
                                "threshold": 0.5, "window": "1m", "severity": "critical",
                                "group_by": ["provider", "model"]})
    service = AlertService(
        Evaluator([rule], jaeger_url="http://jaeger:16686"),
        NotifierWorker([AlertmanagerNotifier(alertmanager.url, name="am", resend_interval=1)]),
        interval=0.1,
    )
    service.start()
    try:
        for i in range(3):
            service.observe(record(time.time(), error=SERVER_ERROR, trace_id=f"{i + 1:032x}"))

        def listed() -> list[dict[str, Any]]:
            return [a for a in alertmanager.alerts()
                    if a["labels"].get("alertname") == "OpenAIErrors"]

        (am_alert,) = wait_for(listed, timeout=15)
        assert am_alert["labels"] == {"alertname": "OpenAIErrors", "severity": "critical",
                                      "provider": "openai", "model": "gpt-4o"}
        assert am_alert["status"]["state"] == "active"
        assert set(am_alert["annotations"]["trace_ids"].split(",")) == {
            f"{i + 1:032x}" for i in range(3)}
        assert am_alert["generatorURL"].startswith("http://jaeger:16686/trace/")
        # Re-sent while firing: Alertmanager's end time keeps moving forward.
        wait_for(lambda: [a for a in listed() if a["endsAt"] > am_alert["endsAt"]], timeout=10)

        # Alertmanager routes it to its own receiver (our loopback webhook).
        (routed,) = wait_for(lambda: delivered(hook, "firing"), timeout=15)
        assert routed["receiver"] == "hook"
        assert routed["alerts"][0]["labels"]["model"] == "gpt-4o"

        for _ in range(10):
            service.observe(record(time.time()))
        resolved = wait_for(lambda: delivered(hook, "resolved"), timeout=15)
        assert resolved[0]["alerts"][0]["status"] == "resolved"
        assert resolved[0]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        wait_for(lambda: not listed(), timeout=15)  # no longer an active alert
    finally:
        service.shutdown()
