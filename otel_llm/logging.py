"""Structured logs: JSON lines with trace correlation, secret redaction, rotation, audit events.

``setup_logging()`` configures the root logger once (calling it again replaces what it installed
before, it never stacks handlers). Every record that reaches its handlers carries
``trace_id``/``span_id`` of the current span, the ``request_id`` of the current request (set by
:func:`otel_llm.fastapi.instrument_app`'s middleware, or by :func:`bind_request_id`) and the
service name, and has its message, exception text and extra fields redacted with
:func:`otel_llm.core.redact.redact` — the one redaction function of the package.

Absolute imports only: this module is ``otel_llm.logging`` and imports the standard ``logging``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Final

from opentelemetry import trace

from otel_llm._field_redaction import _redact_mapping, is_sensitive_key, redact_value
from otel_llm.core.redact import REDACTED, redact

__all__ = [
    "setup_logging",
    "JsonFormatter",
    "TextFormatter",
    "RedactingFilter",
    "ContextFilter",
    "AuditLogger",
    "request_id_var",
    "get_request_id",
    "bind_request_id",
    "is_sensitive_key",
    "redact_value",
    "add_otlp_handler",
]

request_id_var: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "otel_llm_request_id", default=None
)
"""The id of the request being served; set per request by the FastAPI middleware."""

CONTEXT_FIELDS: Final = ("service", "trace_id", "span_id", "request_id")
# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    {*logging.makeLogRecord({}).__dict__, "message", "asctime", "taskName"}
)
_OURS: Final = "_otel_llm_handler"


def get_request_id() -> str | None:
    """The current request's id, or ``None`` outside a request."""
    return request_id_var.get()


@contextmanager
def bind_request_id(request_id: str) -> Iterator[None]:
    """Make ``request_id`` the current request id inside the block (workers, CLIs, tests)."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RedactingFilter(logging.Filter):
    """Redacts a record in place: message (with its args merged), exception text, extra fields.

    Always returns ``True``: it changes records, it never drops them. Records are shared by all
    handlers, so a handler after this one sees the redacted record too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A bad %-format is the caller's; the handler's own format() hits it again and
            # reports it through Handler.handleError, the standard path.
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in [k for k in record.__dict__ if k not in _STANDARD_ATTRS]:
            value = record.__dict__[key]
            record.__dict__[key] = REDACTED if is_sensitive_key(key) else redact_value(value)
        return True


class ContextFilter(logging.Filter):
    """Adds ``service``, ``trace_id``, ``span_id`` and ``request_id`` to each record.

    Ids come from the current span and request; a field the caller passed in ``extra`` wins.
    Absent values are ``None``. Always returns ``True``.
    """

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        values: dict[str, object] = {
            "service": self._service or _resource_service(),
            "trace_id": format(context.trace_id, "032x") if context.is_valid else None,
            "span_id": format(context.span_id, "016x") if context.is_valid else None,
            "request_id": request_id_var.get(),
        }
        for key, value in values.items():
            if key not in record.__dict__:
                record.__dict__[key] = value
        return True


def _resource_service() -> str | None:
    # The SDK provider's resource knows the service configure() was given; read each time,
    # because logging is usually set up before configure() runs.
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    name = getattr(resource, "attributes", {}).get("service.name")
    return name if isinstance(name, str) else None


def _iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _json_default(obj: object) -> str:
    return redact(str(obj))


class JsonFormatter(logging.Formatter):
    """One JSON object per record.

    Keys, in order: ``timestamp`` (ISO 8601 UTC, ms), ``level``, ``logger``, ``message``,
    ``module``, ``function``, ``line``, ``service``, ``trace_id``, ``span_id``, ``request_id``,
    then the extra fields, then ``exception`` / ``stack`` when present. Values that JSON cannot
    hold are written as their (redacted) ``str``. Never raises for odd extras.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "timestamp": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        for key in CONTEXT_FIELDS:
            payload[key] = record.__dict__.get(key)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = _finite(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=_json_default, ensure_ascii=False)


def _finite(value: object) -> object:
    # json.dumps writes NaN/Infinity, which is not JSON; log shippers reject the whole line.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER [trace_id=… span_id=… request_id=…] message`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={record.__dict__.get(k) or '-'}" for k in CONTEXT_FIELDS[1:])
        line = (f"{self.formatTime(record)} {record.levelname:<8} {record.name} [{ids}] "
                f"{record.getMessage()}")
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def _prepare(handler: logging.Handler, formatter: logging.Formatter, service: str | None,
             level: int) -> logging.Handler:
    # Context first, so that request ids and extras pass through redaction like everything else.
    handler.addFilter(ContextFilter(service))
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter)
    handler.setLevel(level)
    setattr(handler, _OURS, True)
    return handler


def setup_logging(
    level: int | str = "INFO",
    json: bool = True,
    file: str | os.PathLike[str] | None = None,
    max_bytes: int | None = None,
    backup_count: int = 5,
    service: str | None = None,
    *,
    stream: IO[str] | None = None,
) -> logging.Logger:
    """Configure the root logger for JSON (or text) lines with context and redaction.

    Writes to ``stream`` (default ``sys.stderr``) and, when ``file`` is given, also to that file,
    rotated at ``max_bytes`` keeping ``backup_count`` old files (no rotation when ``max_bytes``
    is ``None``). ``service`` defaults to ``OTEL_SERVICE_NAME``, else the global tracer
    provider's ``service.name``. Idempotent: handlers installed by an earlier call are removed
    and closed first; handlers others installed (pytest's, a user's) are left alone.
    Raises ``ValueError`` for an unknown level or a negative ``max_bytes``/``backup_count``.
    Returns the root logger.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if (max_bytes is not None and max_bytes < 0) or backup_count < 0:
        raise ValueError("max_bytes and backup_count must not be negative")
    service = service or os.environ.get("OTEL_SERVICE_NAME") or None
    formatter: logging.Formatter = JsonFormatter() if json else TextFormatter()

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if file is not None:
        if max_bytes:
            handlers.append(logging.handlers.RotatingFileHandler(
                file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"))
        else:
            handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        root.addHandler(_prepare(handler, formatter, service, numeric))
    root.setLevel(numeric)
    return root


def add_otlp_handler(logger_provider: Any, level: int | str = logging.NOTSET) -> logging.Handler:
    """Send records of the root logger to an OpenTelemetry ``LoggerProvider`` (OTLP export).

    The records get the same redaction as the JSON lines (exception text included) and carry
    the current span's context natively; records of the ``opentelemetry.*`` loggers (the
    exporter's own diagnostics) are not sent. Needs ``opentelemetry-instrumentation-logging``.
    Idempotent per provider: an earlier handler for the same provider is replaced. Remove the
    returned handler from the root logger before shutting the provider down.
    """
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    class _RedactedOTLPHandler(LoggingHandler):
        def emit(self, record: logging.LogRecord) -> None:
            # A copy: the SDK reads exc_info itself (unredacted), so we hand it text instead,
            # without taking the exception away from the other handlers.
            copy = logging.makeLogRecord(record.__dict__)
            for key in ("trace_id", "span_id", "service"):  # native on OTLP records
                copy.__dict__.pop(key, None)
            if copy.exc_info:
                exc = copy.exc_info[1]
                copy.__dict__["exception.type"] = type(exc).__name__
                copy.__dict__["exception.message"] = redact(str(exc))
                copy.__dict__["exception.stacktrace"] = copy.exc_text or ""
                copy.exc_info, copy.exc_text = None, None
            super().emit(copy)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, None) is logger_provider]:
        root.removeHandler(old)
        old.close()
    handler = _RedactedOTLPHandler(logger_provider=logger_provider)
    # The exporter logs its own failures; exporting those through itself would feed a loop.
    handler.addFilter(lambda record: not record.name.startswith("opentelemetry"))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setLevel(level)
    setattr(handler, _OURS, logger_provider)
    root.addHandler(handler)
    return handler


# --- audit events ---------------------------------------------------------------------------
_RISK_LEVELS: Final = ((0.9, logging.CRITICAL), (0.7, logging.ERROR), (0.4, logging.WARNING))


class AuditLogger:
    """Security audit events as structured records on logger ``otel_llm.audit``.

    Each record has ``audit=True``, ``event`` (the event name) and the event's fields, goes
    through the same redaction as every record (use opaque user ids: e-mail addresses are
    redacted), and is also added as a span event ``audit.<event>`` to the current span.
    Methods never raise because of a failure of logging itself.
    """

    def __init__(self, logger: logging.Logger | str = "otel_llm.audit") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def authentication_attempt(self, user_id: str | None, success: bool, *,
                               method: str | None = None, ip: str | None = None,
                               reason: str | None = None, **fields: object) -> None:
        """A login or token check: INFO when it succeeded, WARNING when it failed."""
        level = logging.INFO if success else logging.WARNING
        self._emit(level, "authentication_attempt",
                   f"authentication {'succeeded' if success else 'failed'}",
                   user_id=user_id, success=success, method=method, ip=ip, reason=reason,
                   **fields)

    def authorization_failure(self, user_id: str | None, resource: str, action: str, *,
                              reason: str | None = None, ip: str | None = None,
                              **fields: object) -> None:
        """An authenticated caller was refused ``action`` on ``resource`` (WARNING)."""
        self._emit(logging.WARNING, "authorization_failure", f"{action} on {resource} denied",
                   user_id=user_id, resource=resource, action=action, reason=reason, ip=ip,
                   **fields)

    def suspicious_activity(self, description: str, risk_score: float, *,
                            user_id: str | None = None, ip: str | None = None,
                            **fields: object) -> None:
        """Something looks wrong. ``risk_score`` in [0, 1] (clamped; NaN counts as 1) sets the
        level: ≥0.9 CRITICAL, ≥0.7 ERROR, ≥0.4 WARNING, else INFO."""
        score = 1.0 if math.isnan(risk_score) else min(1.0, max(0.0, float(risk_score)))
        level = next((lv for threshold, lv in _RISK_LEVELS if score >= threshold), logging.INFO)
        self._emit(level, "suspicious_activity", description, risk_score=score,
                   user_id=user_id, ip=ip, **fields)

    def data_access(self, user_id: str | None, resource: str, action: str = "read", *,
                    record_count: int | None = None, **fields: object) -> None:
        """``user_id`` did ``action`` on ``resource`` (INFO)."""
        self._emit(logging.INFO, "data_access", f"{action} {resource}", user_id=user_id,
                   resource=resource, action=action, record_count=record_count, **fields)

    def configuration_change(self, user_id: str | None, setting: str, old_value: object,
                             new_value: object, **fields: object) -> None:
        """``setting`` changed (WARNING). The values of a sensitive setting are never logged."""
        hidden = is_sensitive_key(setting)
        self._emit(logging.WARNING, "configuration_change", f"{setting} changed",
                   user_id=user_id, setting=setting,
                   old_value=REDACTED if hidden else old_value,
                   new_value=REDACTED if hidden else new_value, **fields)

    def _emit(self, level: int, event: str, message: str, **fields: object) -> None:
        extra: dict[str, object] = {"audit": True, "event": event}
        for key, value in fields.items():
            if value is not None:
                # logging refuses extras that shadow LogRecord attributes ("module", "name", …)
                extra[f"{key}_" if key in _STANDARD_ATTRS else key] = value
        self.logger.log(level, message, extra=extra)
        span = trace.get_current_span()
        if span.is_recording():
            redacted = _redact_mapping(extra)
            span.add_event(f"audit.{event}", {
                k: v for k, v in redacted.items() if isinstance(v, str | bool | int | float)
            })
