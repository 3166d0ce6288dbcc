from __future__ import annotations

import json
import logging
import random
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm.alerts import (
    Alert,
    AlertmanagerNotifier,
    DeliveryError,
    EmailNotifier,
    NotifierWorker,
    SlackNotifier,
    TeamsNotifier,
    WebhookNotifier,
    build_notifier,
    parse_config,
)
from otel_llm.alerts.worker import backoff_delay
from tests.alert_fixtures import free_port, wait_for

T0 = 1_700_000_000.0
SECRET_URL = "https://hooks.slack.com/services/T0/B0/XXXXSECRETXXXX"


def alert(state: str = "firing", severity: str = "critical", **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule": "LLMErrorRateHigh", "severity": severity, "state": state,
        "labels": {"alertname": "LLMErrorRateHigh", "severity": severity,
                   "provider": "openai", "model": "gpt-4o"},
        "annotations": {"summary": "openai gpt-4o: 40% of calls failed"},
        "metric": "error_rate", "op": ">", "threshold": 0.05, "value": 0.4,
        "active_since": T0 - 60, "fired_at": T0, "at": T0 + 90,
        "resolved_at": T0 + 90 if state == "resolved" else None,
        "trace_ids": ("a" * 32, "b" * 32),
        "trace_links": ("http://jaeger:16686/trace/" + "a" * 32,
                        "http://jaeger:16686/trace/" + "b" * 32),
        "fingerprint": "0123456789abcdef",
    }
    fields.update(kw)
    return Alert(**fields)


class Capture:
    """An httpx MockTransport that records requests and answers with scripted statuses."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []
        self.threads: list[str] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.threads.append(threading.current_thread().name)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def json(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


@pytest.fixture
def meter() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def outcomes(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "otel_llm.alerts.notifications":
                    for p in metric.data.data_points:
                        key = (str(p.attributes["notifier"]), str(p.attributes["outcome"]))
                        out[key] = int(p.value)
    return out


# --- payload shapes -----------------------------------------------------------------------------
def test_webhook_posts_alertmanager_v4_payload() -> None:
    cap = Capture()
    WebhookNotifier("http://receiver/hook", name="ops", transport=cap.transport).send([alert()])
    body = cap.json()
    assert cap.requests[0].url == "http://receiver/hook"
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["groupLabels"] == {"alertname": "LLMErrorRateHigh"}
    assert body["groupKey"] == '{}:{alertname="LLMErrorRateHigh"}'
    (a,) = body["alerts"]
    assert a["status"] == "firing" and a["labels"]["model"] == "gpt-4o"
    assert a["startsAt"] == "2023-11-14T22:13:20.000Z" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["annotations"]["trace_ids"] == "a" * 32 + "," + "b" * 32
    assert a["annotations"]["value"] == "40%" and a["annotations"]["threshold"] == "> 5%"
    assert a["generatorURL"].endswith("/trace/" + "a" * 32)
    assert a["fingerprint"] == "0123456789abcdef"

    WebhookNotifier("http://receiver/hook", name="ops", transport=cap.transport).send(
        [alert("resolved")])
    resolved = cap.json()
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2023-11-14T22:14:50.000Z"


def test_slack_message_has_colour_value_threshold_duration_and_trace_links() -> None:
    cap = Capture()
    SlackNotifier(SECRET_URL, name="slack", transport=cap.transport).send(
        [alert(), alert(severity="warning")])
    body = cap.json()
    assert body["text"].startswith("[FIRING] LLMErrorRateHigh")
    first, second = body["attachments"]
    assert (first["color"], second["color"]) == ("#d00000", "#f2c744")
    fields = {f["title"]: f["value"] for f in first["fields"]}
    assert fields["Value"] == "40%" and fields["Threshold"] == "> 5%"
    assert fields["Firing for"] == "1m30s"
    assert f"<http://jaeger:16686/trace/{'a' * 32}|{'a' * 16}>" in fields["Traces"]
    SlackNotifier(SECRET_URL, name="slack", transport=cap.transport).send([alert("resolved")])
    assert cap.json()["attachments"][0]["color"] == "#2eb886"


def test_teams_message_is_an_adaptive_card() -> None:
    cap = Capture()
    TeamsNotifier("https://example.webhook.office.com/x", name="teams",
                  transport=cap.transport).send([alert()])
    (attachment,) = cap.json()["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title = card["body"][0]["items"][0]
    assert title["text"] == "[FIRING] LLMErrorRateHigh" and title["color"] == "Attention"
    assert [a["type"] for a in card["actions"]] == ["Action.OpenUrl"] * 2


def test_alertmanager_posts_v2_alerts_with_ends_at() -> None:
    cap = Capture()
    am = AlertmanagerNotifier("http://am:9093/", name="am", resend_interval=60,
                              clock=lambda: T0 + 100, transport=cap.transport)
    am.send([alert()])
    assert cap.requests[0].url == "http://am:9093/api/v2/alerts"
    (firing,) = cap.json()
    assert firing["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert firing["endsAt"] == "2023-11-14T22:19:00.000Z"  # now + 4 x resend interval
    assert firing["labels"]["alertname"] == "LLMErrorRateHigh"
    am.send([alert("resolved")])
    assert cap.json()[0]["endsAt"] == "2023-11-14T22:14:50.000Z"


def test_severity_and_resolved_filters() -> None:
    email = EmailNotifier("localhost", sender="a@x", to=["b@x"])  # critical only by default
    assert email.accepts(alert(severity="critical"))
    assert not email.accepts(alert(severity="warning"))
    quiet = WebhookNotifier("http://x", name="w", send_resolved=False,
                            transport=Capture().transport)
    assert not quiet.accepts(alert("resolved")) and quiet.accepts(alert())


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True),
                                                   (400, False), (404, False)])
def test_http_errors_are_classified(status: int, retryable: bool) -> None:
    notifier = WebhookNotifier("http://x", name="w", transport=Capture(status).transport)
    with pytest.raises(DeliveryError) as info:
        notifier.send([alert()])
    assert info.value.retryable is retryable and str(info.value) == f"HTTP {status}"


# --- secrets ------------------------------------------------------------------------------------
def test_secrets_never_reach_reprs_logs_or_errors(meter: tuple[MeterProvider, Any],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = parse_config(
        "notifiers:\n  - {type: slack, url: '${URL}'}\n"
        "  - {type: email, host: localhost, from: a@x, to: b@x, username: u,"
        " password: '${PW}'}\n",
        environ={"URL": SECRET_URL, "PW": "hunter2"},
    )
    slack = build_notifier(cfg.notifiers[0], transport=Capture(500, 500).transport)
    email = build_notifier(cfg.notifiers[1])
    for thing in (cfg, slack, email):
        assert "SECRET" not in repr(thing) and "hunter2" not in repr(thing)
    worker = NotifierWorker([slack], meter_provider=meter[0], max_attempts=2,
                            sleep=lambda s: None)
    worker.start()
    worker.submit([alert()])
    assert worker.flush(5)
    worker.shutdown()
    assert caplog.records, "a failure is logged"
    for rec in caplog.records:
        assert "SECRET" not in rec.getMessage() and "hooks.slack.com" not in rec.getMessage()
    # Through a real socket too: connection errors do not leak the URL.
    dead = WebhookNotifier(f"http://127.0.0.1:{free_port()}/SECRET", name="dead")
    with pytest.raises(DeliveryError) as info:
        dead.send([alert()])
    assert "SECRET" not in str(info.value) and info.value.__cause__ is None
    dead.close()


# --- the worker ---------------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        delay = backoff_delay(attempt, 1.0, 30.0, rng)
        full = min(30.0, 2.0**attempt)
        assert full / 2 <= delay <= full


def test_worker_retries_with_backoff_off_the_callers_thread(
        meter: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    cap = Capture(500, 503, 200)
    slept: list[float] = []
    worker = NotifierWorker(
        [WebhookNotifier("http://x", name="hook", transport=cap.transport)],
        meter_provider=meter[0], initial_backoff=1.0, max_backoff=10.0,
        rng=random.Random(0), sleep=slept.append,
    )
    worker.start()
    worker.submit([alert()])
    assert worker.flush(5)
    worker.shutdown()
    assert len(cap.requests) == 3
    assert set(cap.threads) == {"otel-llm-notifier-hook"}
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0
    assert outcomes(meter[1]) == {("hook", "retry"): 2, ("hook", "success"): 1}


def test_permanent_errors_are_not_retried(
        meter: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    cap = Capture(400)
    slept: list[float] = []
    worker = NotifierWorker([WebhookNotifier("http://x", name="hook", transport=cap.transport)],
                            meter_provider=meter[0], sleep=slept.append)
    worker.start()
    worker.submit([alert()])
    assert worker.flush(5)
    worker.shutdown()
    assert len(cap.requests) == 1 and slept == []
    assert outcomes(meter[1]) == {("hook", "failure"): 1}


class Blocking:
    """A notifier that hangs until released."""

    name = "stuck"
    resend_interval = None

    def __init__(self) -> None:
        self.release = threading.Event()

    def accepts(self, alert: Alert) -> bool:
        return True

    def send(self, alerts: Sequence[Alert]) -> None:
        self.release.wait(10)
        raise DeliveryError("timed out", retryable=True)

    def close(self) -> None:
        return None


def test_a_stuck_notifier_never_blocks_the_others_and_full_queues_drop(
        meter: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    stuck, cap = Blocking(), Capture()
    worker = NotifierWorker([stuck, WebhookNotifier("http://x", name="hook",
                                                    transport=cap.transport)],
                            meter_provider=meter[0], queue_size=2, max_attempts=1)
    worker.start()
    for i in range(5):
        started = time.monotonic()
        worker.submit([alert()])
        assert time.monotonic() - started < 0.1  # submit never waits
        wait_for(lambda n=i + 1: len(cap.requests) == n, timeout=5)  # the other one delivers
    stuck.release.set()
    worker.shutdown(5)
    counts = outcomes(meter[1])
    assert counts[("hook", "success")] == 5
    # One batch in flight, two queued, the two oldest queued ones dropped.
    assert counts[("stuck", "dropped")] == 2


def test_resend_goes_only_to_notifiers_that_ask_and_only_when_due() -> None:
    cap_am, cap_hook = Capture(), Capture()
    am = AlertmanagerNotifier("http://am", name="am", resend_interval=60,
                              transport=cap_am.transport)
    hook = WebhookNotifier("http://x", name="hook", transport=cap_hook.transport)
    worker = NotifierWorker([am, hook])
    worker.start()
    worker.resend(lambda: [alert()], now=T0)
    worker.resend(lambda: [alert()], now=T0 + 30)  # not due
    worker.resend(lambda: [alert()], now=T0 + 61)
    assert worker.flush(5)
    worker.shutdown()
    assert len(cap_am.requests) == 2 and cap_hook.requests == []


# --- email --------------------------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def _smtp(inbox: Inbox, **kwargs: Any) -> Any:
    from aiosmtpd.controller import Controller

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


def test_email_delivers_the_critical_alert_over_loopback_smtp() -> None:
    inbox = Inbox()
    controller = _smtp(inbox)
    try:
        notifier = EmailNotifier("127.0.0.1", port=controller.port, starttls=False,
                                 sender="otel-llm@example.com", to=["oncall@example.com"])
        worker = NotifierWorker([notifier])
        worker.start()
        worker.submit([alert(severity="warning"), alert(severity="critical")])
        assert worker.flush(10)
        worker.shutdown()
    finally:
        controller.stop()
    ((rcpts, msg),) = inbox.messages
    assert rcpts == ["oncall@example.com"]
    assert msg["Subject"] == "[FIRING:1] LLMErrorRateHigh"  # the warning was filtered out
    body = msg.get_payload()
    assert "40% of calls failed" in body and "http://jaeger:16686/trace/" + "a" * 32 in body


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not installed: cannot make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def test_email_starttls_and_login(tmp_path: Path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret"
        if ok:
            inbox.logins.append((data.login, data.password))
        return AuthResult(success=ok)

    controller = _smtp(inbox, tls_context=server_ctx, require_starttls=True,
                       authenticator=authenticator, auth_required=True)
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        EmailNotifier("127.0.0.1", port=controller.port, username="alerts", password="s3cret",
                      sender="otel-llm@example.com", to=["oncall@example.com"],
                      ssl_context=client_ctx).send([alert()])
    finally:
        controller.stop()
    assert inbox.logins == [(b"alerts", b"s3cret")] and len(inbox.messages) == 1


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False),
        (smtplib.SMTPRecipientsRefused({}), False),
        (smtplib.SMTPResponseException(451, b"try later"), True),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (ConnectionRefusedError(111, "refused"), True),
    ],
)
def test_smtp_failures_are_classified_without_the_password(
        monkeypatch: pytest.MonkeyPatch, error: Exception, retryable: bool) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(smtplib, "SMTP", broken)
    notifier = EmailNotifier("mail", sender="a@x", to=["b@x"], username="u",
                             password="pw-secret")
    with pytest.raises(DeliveryError) as info:
        notifier.send([alert()])
    assert info.value.retryable is retryable and "pw-secret" not in str(info.value)
