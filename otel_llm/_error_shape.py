"""The error shape of FastAPI responses and the exception handlers that produce it.

Implementation of :mod:`otel_llm.fastapi` (which documents the shape and re-exports the public
names); shared by its request middleware and health routes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm._records import record_exception_event
from otel_llm.core.errors import classify_exception, classify_http_status
from otel_llm.core.exceptions import CategorizedError
from otel_llm.core.redact import redact
from otel_llm.core.types import ErrorInfo
from otel_llm.logging import redact_value, request_id_var

REQUEST_ID_HEADER: Final = "X-Request-ID"
_INTERNAL: Final = {"code": "INTERNAL_ERROR", "message": "Internal server error",
                    "category": "system_error", "severity": "high", "details": {}}
_NO_BODY: Final = frozenset({204, 304})
_HANDLED: Final = "otel_llm.handled_exception"

# The public module's logger: what users configure for ``otel_llm.fastapi`` applies here.
logger = logging.getLogger("otel_llm.fastapi")


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
        record_exception_event(span, exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    _count(classify_exception(exc), 500)
    return _shaped(request, dict(_INTERNAL), 500, None)


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
