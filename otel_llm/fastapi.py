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

import inspect
import logging
import math
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Final

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm.core.errors import classify_exception, classify_http_status
from otel_llm.core.exceptions import CategorizedError
from otel_llm.core.redact import redact
from otel_llm.core.types import ErrorInfo
from otel_llm.logging import redact_value, request_id_var

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

REQUEST_ID_HEADER: Final = "X-Request-ID"
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEADER_KEY: Final = REQUEST_ID_HEADER.lower().encode()
# Captured-header attribute form of the HTTP semantic conventions.
_SPAN_REQUEST_ID: Final = "http.request.header.x-request-id"
_INTERNAL: Final = {"code": "INTERNAL_ERROR", "message": "Internal server error",
                    "category": "system_error", "severity": "high", "details": {}}
_NO_BODY: Final = frozenset({204, 304})
_HANDLED: Final = "otel_llm.handled_exception"

logger = logging.getLogger("otel_llm.fastapi")
access_logger = logging.getLogger("otel_llm.access")


# --- error shape --------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id(request: Request | None) -> str | None:
    found = request_id_var.get()
    if found is None and request is not None:
        state = request.scope.get("state")
        found = state.get("request_id") if isinstance(state, dict) else None
    return found if isinstance(found, str) else None


def error_response(
    request: Request | None,
    error: CategorizedError | None = None,
    *,
    status_code: int | None = None,
    code: str | None = None,
    message: str | None = None,
    details: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
    count: bool = True,
) -> JSONResponse:
    """A response in the one error shape, with ``X-Request-ID`` when a request id is known.

    From ``error`` (its code, message, category, severity, details and ``http_status``), or
    from ``status_code`` alone (category and severity by :func:`classify_http_status`, code and
    message from the HTTP reason phrase); ``status_code``/``code``/``message``/``details``
    override either. Messages and details are redacted (secrets, sensitive keys, e-mails);
    details are made JSON-safe. A numeric ``retry_after`` of the error becomes ``Retry-After``.
    With ``count`` (default), the error is added to ``otel_llm.errors`` and its category and
    severity are set on the current (server) span. Never raises for odd details.
    """
    if error is not None:
        status = status_code if status_code is not None else error.http_status
        info = classify_exception(error)
        body: dict[str, object] = error.to_dict()
    else:
        status = status_code if status_code is not None else 500
        info = classify_http_status(status, message or "")
        body = {"code": _phrase(status).upper().replace(" ", "_").replace("-", "_"),
                "message": _phrase(status), "category": info.category,
                "severity": info.severity, "details": {}}
    if code is not None:
        body["code"] = code
    if message is not None:
        body["message"] = message
    if details is not None:
        body["details"] = dict(details)
    body["message"] = redact(str(body["message"]))
    raw_details = body["details"]
    body["details"] = redact_value(raw_details) if isinstance(raw_details, Mapping) else {}
    if count:
        _count(info, status)
    return _shaped(request, body, status, headers, getattr(error, "retry_after", None))


def _shaped(request: Request | None, body: Mapping[str, object], status: int,
            headers: Mapping[str, str] | None, retry_after: object = None,
            extra: Mapping[str, object] | None = None) -> JSONResponse:
    request_id = _request_id(request)
    out = dict(headers or {})
    if request_id is not None:
        out[REQUEST_ID_HEADER] = request_id
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) \
            and math.isfinite(retry_after) and retry_after >= 0:
        out.setdefault("Retry-After", str(math.ceil(retry_after)))
    content = {"error": body, "timestamp": _now(), "request_id": request_id,
               "path": request.url.path if request is not None else None, **(extra or {})}
    return JSONResponse(content, status_code=status, headers=out)


def _count(info: ErrorInfo, status: int) -> None:
    runtime = _runtime.current()
    try:
        runtime.accountant.instruments.errors.add(1, {
            sc.OTEL_LLM_ERROR_CATEGORY: info.category, sc.OTEL_LLM_ERROR_SEVERITY: info.severity,
            sc.ERROR_TYPE: info.type, "http.response.status_code": status})
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(sc.OTEL_LLM_ERROR_CATEGORY, info.category)
            span.set_attribute(sc.OTEL_LLM_ERROR_SEVERITY, info.severity)
    except Exception as exc:  # counting must never turn an error response into a crash
        runtime.accountant.internal_error("fastapi error metrics", exc)


def _internal_error_response(request: Request | None, exc: BaseException) -> JSONResponse:
    """The generic 500: logged with its stack trace, counted, recorded; the body says nothing."""
    if request is not None and request.scope.get(_HANDLED) is exc:
        # Already logged and counted by the middleware (failure after the response started);
        # Starlette's outer error middleware calls this handler again on the way out.
        return _shaped(request, dict(_INTERNAL), 500, None)
    path = request.url.path if request is not None else None
    logger.error("unhandled exception in %s", path, exc_info=exc)
    span = trace.get_current_span()
    if span.is_recording():
        _record_exception(span, exc)
    _count(classify_exception(exc), 500)
    return _shaped(request, dict(_INTERNAL), 500, None)


def _record_exception(span: Span, exc: BaseException) -> None:
    # The exception event goes to the trace backend: redacted like the hooks' events.
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    span.record_exception(exc, attributes={
        "exception.message": redact(str(exc), 2048),
        "exception.stacktrace": redact(stack, 16384),
    })
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


# --- exception handlers (Starlette calls them inside the server span) ---------------------------
async def _categorized(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, CategorizedError):  # registered for CategorizedError only
        return _internal_error_response(request, exc)
    if exc.http_status >= 500:
        logger.warning("%s: %s (%s/%s)", exc.code, exc.message, exc.category, exc.severity)
    return error_response(request, exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        return _internal_error_response(request, exc)
    headers = dict(exc.headers or {})
    if exc.status_code in _NO_BODY or exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=headers)
    detail = exc.detail
    text = detail if isinstance(detail, str) else None
    extra = None if text is not None or detail is None else {"detail": detail}
    return error_response(request, status_code=exc.status_code, message=text, details=extra,
                          headers=headers)


async def _validation(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        return _internal_error_response(request, exc)
    # Only where, what and why: "input" echoes the caller's data (maybe a secret) and "ctx"
    # can hold exception objects.
    errors = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return error_response(request, status_code=422, code="VALIDATION_ERROR",
                          message="Request validation failed", details={"errors": errors})


async def _unexpected(request: Request, exc: Exception) -> Response:
    return _internal_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error of ``app`` to the error shape with the right status.

    ``CategorizedError`` → its ``http_status``; ``HTTPException`` (Starlette's and FastAPI's)
    → its status, headers kept, ``detail`` as message (or in ``details`` when not a string);
    ``RequestValidationError`` → 422 with ``details.errors`` (loc, msg, type; never the
    input); any other exception → a generic 500 (``INTERNAL_ERROR``) whose body says nothing of
    the exception, which is logged with its stack trace. Without :class:`RequestContextMiddleware`
    Starlette re-raises an unexpected exception after sending the 500 (servers log it again).
    """
    app.add_exception_handler(CategorizedError, _categorized)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)


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


# --- health routes ------------------------------------------------------------------------------
HealthCheck = Callable[[], object]
"""A readiness check: sync or async, no arguments. Fails when it returns ``False``, raises or
times out; anything else (``True``, ``None``, …) passes. Sync checks run in a worker thread."""


class HealthRoutes:
    """``{prefix}/live``, ``{prefix}/ready`` and ``{prefix}`` with pluggable readiness checks.

    ``/live`` answers 200 ``{"status": "ok"}`` while the process serves requests. ``/ready``
    and ``{prefix}`` run all checks concurrently, each bounded by ``timeout`` seconds: 200
    ``{"status": "ok", "checks": {name: {"status", "duration_ms"}}}``, or 503 in the error shape
    (``SERVICE_UNAVAILABLE``, ``details.checks``) plus the same ``status: "fail"`` and
    ``checks`` keys. A failure names only the exception type, ``timeout`` or ``returned false``;
    its detail is logged (WARNING, with stack trace) when the check turns from passing to
    failing, not on every probe. Probe failures are not counted in ``otel_llm.errors``. A sync
    check still running from an earlier probe reports ``timeout`` rather than taking another
    worker thread (a hung database ping must not starve the app's thread pool).
    """

    def __init__(self, checks: Mapping[str, HealthCheck] | None = None, *,
                 timeout: float = 2.0, prefix: str = "/health") -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.checks: dict[str, HealthCheck] = dict(checks or {})
        self.timeout = timeout
        self.prefix = "/" + prefix.strip("/")
        self._passing: dict[str, bool] = {}
        self._busy: set[str] = set()
        self._started = time.monotonic()

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Add (or replace) the readiness check ``name``."""
        self.checks[name] = check

    async def run(self) -> dict[str, dict[str, object]]:
        """Run every check; ``{name: {"status": "ok"|"fail", "duration_ms", ["error"]}}``."""
        results: dict[str, dict[str, object]] = {}

        async def one(name: str, check: HealthCheck) -> None:
            results[name] = await self._run_one(name, check)

        async with anyio.create_task_group() as group:
            for name, check in list(self.checks.items()):
                group.start_soon(one, name, check)
        return results

    def _in_thread(self, name: str, check: HealthCheck) -> object:
        try:
            return check()
        finally:  # runs when the thread ends, even after the probe gave up waiting
            self._busy.discard(name)

    async def _run_one(self, name: str, check: HealthCheck) -> dict[str, object]:
        start = time.perf_counter()
        error: str | None = None
        failure: BaseException | None = None
        try:
            with anyio.fail_after(self.timeout):
                if inspect.iscoroutinefunction(check):
                    result = await check()
                elif name in self._busy:
                    raise TimeoutError
                else:
                    self._busy.add(name)
                    result = await anyio.to_thread.run_sync(
                        self._in_thread, name, check, abandon_on_cancel=True)
                    if inspect.isawaitable(result):
                        result = await result
            if result is False:
                error = "returned false"
        except TimeoutError:
            error = "timeout"
        except Exception as exc:  # a failing check is a result, not a crash of the probe
            error, failure = type(exc).__name__, exc
        passing = error is None
        if not passing and self._passing.get(name, True):
            logger.warning("health check %s failing: %s", name, error, exc_info=failure)
        elif passing and self._passing.get(name) is False:
            logger.info("health check %s passing again", name)
        self._passing[name] = passing
        outcome: dict[str, object] = {
            "status": "ok" if passing else "fail",
            "duration_ms": round((time.perf_counter() - start) * 1000, 3),
        }
        return {**outcome, "error": error} if error is not None else outcome

    async def _ready(self, request: Request) -> Response:
        return await self._report(request, {})

    async def _health(self, request: Request) -> Response:
        return await self._report(request, {"uptime_s": round(time.monotonic() - self._started, 3)})

    @staticmethod
    async def _live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _report(self, request: Request, extra: dict[str, object]) -> Response:
        checks = await self.run()
        failing = sorted(n for n, r in checks.items() if r["status"] != "ok")
        if not failing:
            return JSONResponse({"status": "ok", "checks": checks, **extra})
        body = {"code": "SERVICE_UNAVAILABLE", "message": "not ready: " + ", ".join(failing),
                "category": "external_service", "severity": "high",
                "details": {"checks": checks}}
        return _shaped(request, body, 503, None,
                       extra={"status": "fail", "checks": checks, **extra})

    def install(self, app: FastAPI) -> None:
        """Add the three GET routes to ``app`` (tag ``health``)."""
        for path, endpoint in ((self.prefix, self._health), (self.prefix + "/live", self._live),
                               (self.prefix + "/ready", self._ready)):
            app.add_api_route(path, endpoint, methods=["GET"], tags=["health"])


def add_health_routes(app: FastAPI, checks: Mapping[str, HealthCheck] | None = None, *,
                      timeout: float = 2.0, prefix: str = "/health") -> HealthRoutes:
    """Add ``{prefix}``, ``{prefix}/live``, ``{prefix}/ready`` to ``app``; see HealthRoutes."""
    routes = HealthRoutes(checks, timeout=timeout, prefix=prefix)
    routes.install(app)
    return routes


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
