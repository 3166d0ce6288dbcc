from __future__ import annotations

import io
import json
import logging
import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from otel_llm.logging import (
    AuditLogger,
    add_otlp_handler,
    bind_request_id,
    get_request_id,
    is_sensitive_key,
    setup_logging,
)
from tests.conftest import Harness

log = logging.getLogger("tests.logging")


@contextmanager
def configured(**options: Any) -> Iterator[io.StringIO]:
    """setup_logging into a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    try:
        setup_logging(stream=buffer, **options)
        yield buffer
    finally:
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def only(buffer: io.StringIO) -> dict[str, Any]:
    [record] = [r for r in lines(buffer) if r["logger"].startswith(("tests.", "otel_llm."))]
    return record


def test_json_line_has_the_contract_fields_and_extras() -> None:
    with configured(service="rag-api") as out:
        log.warning("hello %s", "world", extra={"user": "u1", "n": 3, "nan": float("nan")})
    record = only(out)
    assert list(record)[:11] == ["timestamp", "level", "logger", "message", "module",
                                 "function", "line", "service", "trace_id", "span_id",
                                 "request_id"]
    assert record["timestamp"].endswith("Z")
    assert (record["level"], record["logger"], record["message"]) == (
        "WARNING", "tests.logging", "hello world")
    assert record["function"] == "test_json_line_has_the_contract_fields_and_extras"
    assert record["module"] == "test_logging" and isinstance(record["line"], int)
    assert record["service"] == "rag-api"
    assert (record["trace_id"], record["span_id"], record["request_id"]) == (None, None, None)
    assert (record["user"], record["n"], record["nan"]) == ("u1", 3, "nan")


def test_record_inside_a_span_carries_its_trace_and_span_id(harness: Harness) -> None:
    tracer = harness.tracer_provider.get_tracer("test")
    with configured() as out, tracer.start_as_current_span("work") as span:
        log.info("inside")
    context = span.get_span_context()
    record = only(out)
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")


def test_request_id_comes_from_the_context() -> None:
    with configured() as out:
        with bind_request_id("req-42"):
            assert get_request_id() == "req-42"
            log.info("in request")
        assert get_request_id() is None
        log.info("after")
    inside, after = lines(out)
    assert (inside["request_id"], after["request_id"]) == ("req-42", None)


def test_service_defaults_to_the_environment_then_the_tracer_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    with configured() as out:
        log.info("x")
    assert only(out)["service"] == "from-env"


def test_setup_is_idempotent_and_leaves_other_handlers_alone() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    try:
        with configured(level="DEBUG") as first:
            second = io.StringIO()
            setup_logging(level="DEBUG", stream=second)
            log.debug("once")
            assert first.getvalue() == ""
            assert len(lines(second)) == 1
            assert foreign in root.handlers
            assert root.level == logging.DEBUG
    finally:
        root.removeHandler(foreign)


def test_invalid_settings_fail_early() -> None:
    with pytest.raises(ValueError, match="level"):
        setup_logging(level="LOUD")
    with pytest.raises(ValueError):
        setup_logging(max_bytes=-1)


def test_text_format_for_humans(harness: Harness) -> None:
    with configured(json=False) as out, bind_request_id("r-1"):
        log.info("plain %d", 1)
    text = out.getvalue()
    assert "INFO" in text and "tests.logging" in text and "plain 1" in text
    assert "request_id=r-1" in text and "trace_id=-" in text


def test_exception_text_is_kept_and_redacted() -> None:
    with configured() as out:
        try:
            raise ConnectionError("auth failed with api_key=sk-live-abcdefghijklmnop")
        except ConnectionError:
            log.exception("call failed")
    record = only(out)
    assert "Traceback" in record["exception"] and "ConnectionError" in record["exception"]
    assert "abcdefghijklmnop" not in json.dumps(record)


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [("password", True), ("db_password", True), ("token", True), ("access_token", True),
     ("apiKey", True), ("X-Api-Key", True), ("api_key", True), ("client_secret", True),
     ("Authorization", True), ("private_key", True), ("input_tokens", False),
     ("max_tokens", False), ("token_count", False), ("user", False), ("model", False)],
)
def test_sensitive_keys(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_extras_with_sensitive_keys_are_redacted_wherever_they_nest() -> None:
    with configured() as out:
        log.info("call", extra={
            "password": "hunter2", "api_key": 12345, "input_tokens": 812,
            "request": {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}, "model": "gpt-4o"},
            "attempts": [{"token": "t0k3n"}, "mail me at alice@example.com"],
        })
    record = only(out)
    assert record["password"] == "[REDACTED]" and record["api_key"] == "[REDACTED]"
    assert record["input_tokens"] == 812
    assert record["request"] == {"headers": {"Authorization": "[REDACTED]"}, "model": "gpt-4o"}
    assert record["attempts"] == [{"token": "[REDACTED]"}, "mail me at [EMAIL]"]


# --- property: no generated secret survives, in the message or in any extra ------------------
_SAFE = string.ascii_letters + string.digits
_words = st.text(alphabet=_SAFE + " .,:!?", max_size=40)
_sk_keys = st.builds(lambda prefix, body: prefix + body,
                     st.sampled_from(["sk-", "sk-proj-", "sk-ant-api03-"]),
                     st.text(alphabet=_SAFE + "_-", min_size=20, max_size=80))
_bearer = st.builds(lambda scheme, body: f"{scheme} {body}",
                    st.sampled_from(["Bearer", "bearer", "BEARER"]),
                    st.text(alphabet=_SAFE + "-._~+/=", min_size=8, max_size=80))
_password_kv = st.builds(
    lambda key, sep, value: (f"{key}{sep}{value}", value),
    st.sampled_from(["password", "db_password", "passwd", "pwd", "api_key", "apiKey",
                     "secret", "client_secret", "token", "access_token", "refresh_token"]),
    st.sampled_from(["=", ": ", "=\"", " = "]),
    st.text(alphabet=_SAFE + "!#$%()*+-./<>?@[]^_`{|~", min_size=8, max_size=40),
)
_emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(alphabet=_SAFE + "._+-", min_size=1, max_size=30).filter(lambda s: s[0] in _SAFE),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20),
    st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6),
)


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str]:
    """(text containing the secret, the part of it that must not appear)."""
    kind = draw(st.sampled_from(["sk", "bearer", "kv", "email"]))
    if kind == "sk":
        secret = draw(_sk_keys)
        return secret, secret
    if kind == "bearer":
        text = draw(_bearer)
        return text, text.split(" ", 1)[1]
    if kind == "kv":
        return draw(_password_kv)
    email = draw(_emails)
    return email, email


@settings(max_examples=150, deadline=None)
@given(before=_words, after=_words, secret=secrets())
def test_generated_secrets_are_redacted_in_messages_and_extras(
    before: str, after: str, secret: tuple[str, str]
) -> None:
    text, hidden = secret
    assume(hidden not in before + after and hidden not in "[REDACTED] [EMAIL]")
    message = f"{before} {text} {after}"
    with configured() as out:
        log.error("upstream said: %s", message, extra={
            "detail": message, "nested": {"why": [message]}, "raw": text})
    record = only(out)
    assert hidden not in json.dumps(record, ensure_ascii=False)
    assert hidden not in record["message"]
    assert record["message"].startswith("upstream said: ")


# --- rotation ---------------------------------------------------------------------------------
def test_file_output_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    with configured(file=path, max_bytes=600, backup_count=2):
        for i in range(60):
            log.info("line %03d", i, extra={"padding": "x" * 40})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]
    for name in files:
        content = (tmp_path / name).read_text(encoding="utf-8")
        assert len(content.encode()) <= 600
        assert all(json.loads(line)["logger"] == "tests.logging" for line in content.splitlines())
    newest = [json.loads(x)["message"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert newest[-1] == "line 059"


def test_file_without_max_bytes_is_not_rotated(tmp_path: Path) -> None:
    path = tmp_path / "plain.log"
    with configured(file=path):
        for i in range(50):
            log.info("line %d", i)
    assert [p.name for p in tmp_path.iterdir()] == ["plain.log"]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 50


# --- audit events -----------------------------------------------------------------------------
def test_audit_events_have_names_levels_and_fields(harness: Harness) -> None:
    audit = AuditLogger()
    tracer = harness.tracer_provider.get_tracer("test")
    with configured() as out, tracer.start_as_current_span("request") as span:
        audit.authentication_attempt("u-1", True, method="bearer", ip="10.0.0.1")
        audit.authentication_attempt("u-2", False, reason="expired token")
        audit.authorization_failure("u-1", "project/p1", "delete")
        audit.data_access("u-1", "calls", record_count=20, module="x")
        audit.configuration_change("admin", "retention_days", 30, 7)
        audit.configuration_change("admin", "api_key", "sk-old-1234567890", "sk-new-1234567890")
    got = [(r["event"], r["level"]) for r in lines(out)]
    assert got == [
        ("authentication_attempt", "INFO"), ("authentication_attempt", "WARNING"),
        ("authorization_failure", "WARNING"), ("data_access", "INFO"),
        ("configuration_change", "WARNING"), ("configuration_change", "WARNING"),
    ]
    records = lines(out)
    assert all(r["audit"] is True for r in records)
    assert records[0]["method"] == "bearer" and records[0]["success"] is True
    assert records[3]["record_count"] == 20 and records[3]["module_"] == "x"
    assert (records[4]["old_value"], records[4]["new_value"]) == (30, 7)
    assert (records[5]["old_value"], records[5]["new_value"]) == ("[REDACTED]", "[REDACTED]")
    events = [e.name for e in span.events]  # type: ignore[attr-defined]
    assert events[0] == "audit.authentication_attempt" and len(events) == 6


@pytest.mark.parametrize(
    ("score", "level"),
    [(0.0, "INFO"), (0.39, "INFO"), (0.4, "WARNING"), (0.7, "ERROR"), (0.95, "CRITICAL"),
     (7.0, "CRITICAL"), (-1.0, "INFO"), (float("nan"), "CRITICAL")],
)
def test_suspicious_activity_level_follows_the_risk_score(score: float, level: str) -> None:
    with configured() as out:
        AuditLogger().suspicious_activity("many failed logins", score, ip="10.0.0.9")
    record = only(out)
    assert (record["event"], record["level"]) == ("suspicious_activity", level)
    assert 0.0 <= record["risk_score"] <= 1.0


# --- OTLP export ------------------------------------------------------------------------------
def test_otlp_handler_exports_redacted_records_with_trace_context() -> None:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer = TracerProvider().get_tracer("test")
    root = logging.getLogger()
    saved_level = root.level
    replaced = add_otlp_handler(provider)
    handler = add_otlp_handler(provider)
    assert replaced not in root.handlers and handler in root.handlers  # replaced, not stacked
    root.setLevel(logging.INFO)
    try:
        with tracer.start_as_current_span("op") as span, bind_request_id("r-9"):
            try:
                raise RuntimeError("token=abcdef123456 leaked")
            except RuntimeError:
                log.exception("failed with Bearer abc.def.ghi", extra={"password": "pw"})
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        provider.shutdown()
    [exported] = exporter.get_finished_logs()
    record = exported.log_record
    attributes = dict(record.attributes or {})
    assert record.body == "failed with Bearer [REDACTED]"
    assert record.trace_id == span.get_span_context().trace_id
    assert attributes["password"] == "[REDACTED]" and attributes["request_id"] == "r-9"
    assert attributes["exception.type"] == "RuntimeError"
    assert "abcdef123456" not in str(attributes)
    assert "trace_id" not in attributes
