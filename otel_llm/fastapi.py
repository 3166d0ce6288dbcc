"""FastAPI integration: request spans, request ids, access logs, the error shape, health routes.

``instrument_app(app)`` gives a FastAPI service what DESIGN.md §7 asks of ours::

    {"error": {"code", "message", "category", "severity", "details"},
     "timestamp", "request_id", "path"}

is the body of every error response; handled errors are counted in ``otel_llm.errors`` (by
``otel_llm.error.category``, ``otel_llm.error.severity``, ``error.type`` and
``http.response.status_code``; unlike LLM call errors they carry no ``gen_ai.*`` labels).
``install_error_handlers(app)`` and ``error_response(...)`` are usable on their own.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel_llm._error_shape import (
    _HANDLED,
    REQUEST_ID_HEADER,
    _internal_error_response,
    error_response,
    install_error_handlers,
)
from otel_llm._health import HealthCheck, HealthRoutes, add_health_routes
from otel_llm.logging import request_id_var

__all__ = [
    "instrument_app",
    "install_error_handlers",
    "error_response",
    "RequestContextMiddleware",
    "REQUEST_ID_HEADER",
    "HealthRoutes",
    "HealthCheck",
    "add_health_routes",
]

_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEADER_KEY: Final = REQUEST_ID_HEADER.lower().encode()
# Captured-header attribute form of the HTTP semantic conventions.
_SPAN_REQUEST_ID: Final = "http.request.header.x-request-id"

access_logger = logging.getLogger("otel_llm.access")


# --- request context middleware -----------------------------------------------------------------
def _choose_request_id(scope: Scope) -> tuple[str, bool]:
    """The client's ``X-Request-ID`` when well-formed, else the trace id, else a random id."""
    for key, value in scope.get("headers", ()):
        if key.lower() == _HEADER_KEY:
            text = value.decode("latin-1").strip()
            if _REQUEST_ID_RE.fullmatch(text):
                return text, True
            break
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return format(context.trace_id, "032x"), False
    return uuid.uuid4().hex, False


class RequestContextMiddleware:
    """Pure ASGI middleware (streaming bodies pass through untouched).

    Per HTTP request: chooses the request id (see :func:`instrument_app`), binds it to
    :data:`otel_llm.logging.request_id_var` and ``request.state.request_id``, adds
    ``X-Request-ID`` to the response, writes one access-log record on ``otel_llm.access``
    (``method``, ``path``, ``status``, ``duration_ms``, ``client_ip``, ``request_id``) and turns
    an unexpected exception into the generic 500 when no response has started yet (after that
    it is logged and re-raised, so the server drops the connection).
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id, supplied = _choose_request_id(scope)
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["request_id"] = request_id
        span = trace.get_current_span()
        if supplied and span.is_recording():
            span.set_attribute(_SPAN_REQUEST_ID, [request_id])
        header = (_HEADER_KEY, request_id.encode("latin-1"))
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_KEY]
                message = {**message, "headers": [*kept, header]}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            response = _internal_error_response(Request(scope), exc)
            if status is not None:  # too late for a 500: the server must drop the connection
                scope[_HANDLED] = exc
                raise
            await response(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._log(scope, status, start, request_id)
            request_id_var.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int | None, start: float, request_id: str) -> None:
        duration_ms = round((time.perf_counter() - start) * 1000, 3)
        client = scope.get("client")
        method, path = scope.get("method", ""), scope.get("path", "")
        # No status: the request was cancelled (client went away) before a response started.
        code = status if status is not None else 499
        access_logger.info("%s %s %s %.1fms", method, path, code, duration_ms, extra={
            "method": method, "path": path, "status": code, "duration_ms": duration_ms,
            "client_ip": client[0] if client else None, "request_id": request_id,
        })


# --- one call -----------------------------------------------------------------------------------
def instrument_app(
    app: FastAPI,
    *,
    health: bool | Mapping[str, HealthCheck] = True,
    excluded_urls: str | Sequence[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    access_log: bool = True,
) -> HealthRoutes | None:
    """Instrument ``app``: request spans, request ids, access logs, error shape, health routes.

    Spans and HTTP server metrics come from ``opentelemetry-instrumentation-fastapi`` on the
    given providers (default: the global ones — pass ``telemetry.tracer_provider`` when
    :func:`otel_llm.configure` was given its own). ``excluded_urls`` (regexes, or one
    comma-separated string) are not traced. ``X-Request-ID`` is the client's when it is 1-128
    characters of ``[A-Za-z0-9._-]``, else the trace id. ``health``: ``True`` adds
    ``/health``, ``/health/live`` and ``/health/ready``; a mapping also names the readiness
    checks; ``False`` adds none. Returns the :class:`HealthRoutes` (add checks later with
    ``add_check``) or ``None``. Call before the app starts; a second call does nothing.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if getattr(app.state, "otel_llm_instrumented", False):
        found = getattr(app.state, "otel_llm_health", None)
        return found if isinstance(found, HealthRoutes) else None
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, access_log=access_log)
    excluded = excluded_urls if excluded_urls is None or isinstance(excluded_urls, str) \
        else ",".join(excluded_urls)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider,
                                       meter_provider=meter_provider, excluded_urls=excluded)
    routes = None
    if health is not False:
        routes = add_health_routes(app, health if isinstance(health, Mapping) else None)
    app.state.otel_llm_instrumented = True
    app.state.otel_llm_health = routes
    return routes
