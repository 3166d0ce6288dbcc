"""Error taxonomy: any exception, HTTP status or span maps to one (category, severity, type).

``type`` is the span's ``error.type`` value, a key of :data:`ERROR_TYPES`; category and severity
follow from it through the pinned mapping, except for the application exceptions of
:mod:`otel_llm.core.exceptions`, which carry their own.

Every public function is pure and total: it never raises, whatever it is given, because it runs
where a failure would break a user's call or drop a span. Client SDKs are recognised by class
name and module, never imported, so classifying costs nothing when they are absent.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Final, ParamSpec, cast, get_args

from opentelemetry.semconv.attributes import exception_attributes as _exc
from opentelemetry.semconv.attributes import http_attributes as _http

from otel_llm import semconv as sc
from otel_llm.core import exceptions as app
from otel_llm.core._error_tables import (
    _BUILTINS,
    _CONTEXT_RE,
    _FILTER_RE,
    _GRPC_BY_NUMBER,
    _GRPC_CODES,
    _HTTP_CLIENT_NAMES,
    _HTTP_CLIENT_PACKAGES,
    _INVALID,
    _LEADING_NAME_RE,
    _NAME_TYPES,
    _SDK_BY_STATUS,
    _SDK_NAMES,
    _SDK_PACKAGES,
    _STATUS_IN_TEXT_RE,
    _STATUS_RE,
    _STATUS_TYPES,
    _TEXT_RULES,
)
from otel_llm.core.redact import redact
from otel_llm.core.types import Category, ErrorInfo, LLMCall, Severity

__all__ = [
    "OTHER", "ERROR_TYPES", "error_info", "classify",
    "classify_exception", "classify_http_status", "classify_attributes", "classify_call",
]

OTHER: Final = "_OTHER"
"""The ``error.type`` of an error we cannot name (OpenTelemetry's fallback value)."""

ERROR_TYPES: Final[Mapping[str, tuple[Category, Severity]]] = MappingProxyType(
    {
        "rate_limit": ("resource_error", "high"),
        "timeout": ("external_service", "high"),
        "connection": ("external_service", "high"),
        "server_error": ("external_service", "high"),
        "overloaded": ("external_service", "high"),
        "authentication": ("authentication", "critical"),
        "permission_denied": ("authorization", "high"),
        _INVALID: ("validation", "low"),
        "context_length_exceeded": ("validation", "medium"),
        "not_found": ("validation", "high"),
        "content_filter": ("business_logic", "medium"),
        "cancelled": ("system_error", "low"),
        OTHER: ("system_error", "high"),
    }
)
"""``error.type`` value → (category, severity): the pinned mapping of DESIGN.md §8."""

_CATEGORIES: Final = frozenset(get_args(Category))
_SEVERITIES: Final = frozenset(get_args(Severity))
_OTHER_INFO: Final = ErrorInfo("system_error", "high", OTHER)
_MESSAGE_LIMIT: Final = 200
# Bounds regex work on hostile or huge texts; nothing past this can reach a 200-char message.
_SCAN_LIMIT: Final = 2000
# Names of other conventions that we only read.
_HTTP_STATUS_KEYS: Final = (_http.HTTP_RESPONSE_STATUS_CODE, "http.status_code")
_GRPC_STATUS_KEY: Final = "rpc.grpc.status_code"
# A span keeps at most 128 events by default; the latest are the ones that ended the call.
_EVENT_LIMIT: Final = 128
# How many ``raise … from`` links to follow from a wrapper to the error it wraps.
_CAUSE_LIMIT: Final = 3


_P = ParamSpec("_P")


def _total(fn: Callable[_P, ErrorInfo]) -> Callable[_P, ErrorInfo]:
    """Make ``fn`` total: any failure while classifying yields the ``_OTHER`` info."""

    @functools.wraps(fn)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> ErrorInfo:
        try:
            return fn(*args, **kwargs)
        except Exception:
            # The module's one broad except, on purpose: we classify objects we do not control
            # (a __str__ or property that raises, a cyclic body) on the path that ends a user's
            # span. Not naming an error is acceptable; breaking the call is not. Nothing is
            # logged: this is pure code, and such inputs are the caller's, not our failure.
            return _OTHER_INFO

    return guarded


@_total
def error_info(error_type: str, message: str = "") -> ErrorInfo:
    """The :class:`ErrorInfo` of ``error_type`` per :data:`ERROR_TYPES`; unknown → ``_OTHER``.

    ``message`` is scrubbed of secrets and shortened to one line of at most 200 characters.
    """
    key = error_type if isinstance(error_type, str) and error_type in ERROR_TYPES else OTHER
    category, severity = ERROR_TYPES[key]
    return ErrorInfo(category, severity, key, _short(message))


@_total
def classify(obj: object) -> ErrorInfo:
    """Classify anything; never raises.

    An exception goes to :func:`classify_exception`, an ``int`` (not ``bool``) to
    :func:`classify_http_status`, a mapping to :func:`classify_attributes`, and so does a span
    (anything with a mapping of ``attributes``, such as the SDK's ``ReadableSpan``, with its status
    description and events); a string is read as an ``error.type`` value, exception class name
    or HTTP status; anything else is ``_OTHER``. Except for application exceptions,
    ``(category, severity) == ERROR_TYPES[type]``.
    """
    if isinstance(obj, BaseException):
        return classify_exception(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return classify_http_status(obj)
    if isinstance(obj, Mapping):
        return classify_attributes(obj)
    if isinstance(obj, str):
        return error_info(_type_for_name(obj))
    attributes = getattr(obj, "attributes", None)
    if isinstance(attributes, Mapping):
        description = getattr(getattr(obj, "status", None), "description", None)
        events = [(getattr(e, "name", None), getattr(e, "attributes", None) or {})
                  for e in getattr(obj, "events", None) or ()]
        return classify_attributes(
            attributes, description if isinstance(description, str) else "", events  # type: ignore[arg-type]
        )
    return _OTHER_INFO


@_total
def classify_exception(exc: BaseException) -> ErrorInfo:
    """Classify an exception; never raises.

    In order: application exceptions keep their own category and severity; openai, anthropic,
    httpx and grpc exceptions are matched by class name along the MRO (most specific first);
    then an integer ``status_code`` attribute (other SDKs); then built-in exceptions. An invalid
    request whose message or body speaks of the context length or a content filter becomes
    ``context_length_exceeded`` or ``content_filter``. An exception that names nothing known
    but was raised ``from`` one that does (a framework wrapping the SDK's error) takes its type.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, app.CategorizedError):
        category, severity = ERROR_TYPES[error_type := _exception_type(exc)]
        return ErrorInfo(
            exc.category if exc.category in _CATEGORIES else category,
            exc.severity if exc.severity in _SEVERITIES else severity,
            error_type,
            _short(message),
        )
    error_type, cause = _exception_type(exc), exc.__cause__
    for _ in range(_CAUSE_LIMIT):
        if error_type != OTHER or not isinstance(cause, BaseException):
            break
        error_type, cause = _exception_type(cause), cause.__cause__
    return error_info(error_type, message)


@_total
def classify_http_status(status: int, message: str = "") -> ErrorInfo:
    """Classify an HTTP status (with the response's message, if any); never raises.

    400/409/413/422 and other 4xx → ``invalid_request`` (or ``context_length_exceeded`` /
    ``content_filter`` by message), 401 → ``authentication``, 403 → ``permission_denied``,
    404 → ``not_found``, 408/504 → ``timeout``, 429 → ``rate_limit``, 499 → ``cancelled``,
    529 → ``overloaded``, other 5xx → ``server_error``, anything else → ``_OTHER``.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        return error_info(OTHER, message)
    return error_info(_refine(_status_type(status), message), message)


@_total
def classify_attributes(
    attributes: Mapping[str, object],
    status_description: str = "",
    events: Sequence[tuple[str, Mapping[str, object]]] = (),
) -> ErrorInfo:
    """Classify a span from any instrumentation by what it recorded; never raises.

    The first evidence that names a type wins: ``error.type`` (a type value, an exception
    class name, qualified or not, or an HTTP status); ``http.response.status_code`` /
    ``http.status_code``; ``rpc.grpc.status_code``; ``exception`` events, latest first; the
    status description text. Otherwise ``_OTHER``. Malformed events are skipped.
    """
    exception_events = _exception_events(events)
    messages = [m for a in exception_events if isinstance(m := a.get(_exc.EXCEPTION_MESSAGE), str)]
    description = status_description if isinstance(status_description, str) else ""
    evidence = " ".join([description, *messages])
    message = description or (messages[-1] if messages else "")

    error_type = attributes.get(sc.ERROR_TYPE)
    candidates = [_type_for_name(error_type) if isinstance(error_type, str) else OTHER]
    candidates += [_status_type(s) for k in _HTTP_STATUS_KEYS if (s := _as_int(attributes.get(k)))]
    grpc_code = _as_int(attributes.get(_GRPC_STATUS_KEY))
    candidates.append(_GRPC_BY_NUMBER.get(grpc_code, OTHER) if grpc_code is not None else OTHER)
    for found in candidates:
        if found != OTHER:
            return error_info(_refine(found, evidence), message)
    for attrs in reversed(exception_events):
        name = attrs.get(_exc.EXCEPTION_TYPE)
        text = attrs.get(_exc.EXCEPTION_MESSAGE)
        text = text if isinstance(text, str) else ""
        found = _type_for_name(name) if isinstance(name, str) else OTHER
        found = _refine(found, text) if found != OTHER else _type_for_text(text)
        if found != OTHER:
            return error_info(found, text or message)
    return error_info(_type_for_text(description), message)


@_total
def classify_call(call: LLMCall) -> ErrorInfo:
    """Classify a normalized call by its ``error_type`` (type value, class name or status).

    A valid category and severity the span already carries (``otel_llm.error.*``, e.g. from
    an application exception) are kept; else they follow the type.
    """
    named = call.error_type
    info = error_info(_type_for_name(named)) if isinstance(named, str) else _OTHER_INFO
    category = call.error_category if call.error_category in _CATEGORIES else info.category
    severity = call.error_severity if call.error_severity in _SEVERITIES else info.severity
    if (category, severity) != (info.category, info.severity):
        return ErrorInfo(cast(Category, category), cast(Severity, severity), info.type)
    return info


# --- helpers ------------------------------------------------------------------------------------
def _status_type(status: int) -> str:
    """The type of an HTTP status, before any refinement by message."""
    found = _STATUS_TYPES.get(status)
    if found is not None:
        return found
    if 500 <= status <= 599:
        return "server_error"
    return _INVALID if 400 <= status <= 499 else OTHER


def _refine(error_type: str, evidence: str) -> str:
    """Narrow a generic invalid request to context length or content filter by its text."""
    if error_type != _INVALID:
        return error_type
    lowered = evidence[:_SCAN_LIMIT].lower()
    if _CONTEXT_RE.search(lowered):
        return "context_length_exceeded"
    return "content_filter" if _FILTER_RE.search(lowered) else error_type


def _type_for_name(name: str) -> str:
    """Type for an ``error.type``-like string: a type value, an HTTP status or a class name."""
    text = name.strip()[:_SCAN_LIMIT]
    if text in ERROR_TYPES:
        return text
    if text.lower() in ERROR_TYPES:  # "TIMEOUT"; also "timeout", socket.timeout's name
        return text.lower()
    if _STATUS_RE.fullmatch(text):
        return _status_type(int(text))
    # Qualified names: "openai.RateLimitError", "anthropic._exceptions.OverloadedError",
    # "StatusCode.UNAVAILABLE".
    return _NAME_TYPES.get(text.rsplit(".", 1)[-1], OTHER)


def _type_for_text(text: str) -> str:
    """Type for free text: a leading class name, a mentioned HTTP status, then keywords."""
    text = text[:_SCAN_LIMIT]
    lowered = text.lower()
    head = _LEADING_NAME_RE.match(text)
    status = _STATUS_IN_TEXT_RE.search(lowered)
    for found in (
        _type_for_name(head.group(1)) if head else OTHER,
        _status_type(int(status.group(1))) if status else OTHER,
    ):
        if found != OTHER:
            return _refine(found, text)
    return next((t for pattern, t in _TEXT_RULES if pattern.search(lowered)), OTHER)


def _in_packages(cls: type, packages: tuple[str, ...]) -> bool:
    """Whether ``cls`` is defined in one of ``packages`` (``openai`` but not ``openai_agents``)."""
    module = getattr(cls, "__module__", None)
    return isinstance(module, str) and module.split(".", 1)[0] in packages


def _exception_type(exc: BaseException) -> str:
    """The type one exception names by itself, refined by its message and body."""
    if isinstance(exc, app.CategorizedError):
        return exc.error_type if exc.error_type in ERROR_TYPES else OTHER
    builtin = next((t for classes, t in _BUILTINS if isinstance(exc, classes)), None)
    error_type = _library_type(exc) or _status_attribute_type(exc) or builtin or OTHER
    return _refine(error_type, f"{exc} {_strings(getattr(exc, 'body', None))}")


def _library_type(exc: BaseException) -> str | None:
    """Type of an openai / anthropic / httpx / grpc exception, by its most specific class."""
    for cls in type(exc).__mro__:
        name = cls.__name__
        if _in_packages(cls, _SDK_PACKAGES):
            if name in _SDK_BY_STATUS:
                status = _as_int(getattr(exc, "status_code", None))
                if status is not None and (found := _status_type(status)) != OTHER:
                    return found
            if name in _SDK_NAMES:
                return _SDK_NAMES[name]
        elif _in_packages(cls, _HTTP_CLIENT_PACKAGES) and name in _HTTP_CLIENT_NAMES:
            return _HTTP_CLIENT_NAMES[name]
        elif _in_packages(cls, ("grpc",)):
            # grpc.RpcError.code() returns a grpc.StatusCode enum member.
            code = getattr(exc, "code", None)
            code_name = getattr(code(), "name", None) if callable(code) else None
            entry = _GRPC_CODES.get(code_name) if isinstance(code_name, str) else None
            return entry[1] if entry else None
    return None


def _status_attribute_type(exc: BaseException) -> str | None:
    """Type from an HTTP ``status_code`` on the exception or its ``response`` (other SDKs)."""
    status = _as_int(getattr(exc, "status_code", None))
    if status is None:
        status = _as_int(getattr(getattr(exc, "response", None), "status_code", None))
    return _status_type(status) if status is not None and 400 <= status <= 599 else None


def _as_int(value: object) -> int | None:
    """An integer attribute value, also from a short digit string ("429"); bools are not."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if 0 < len(text) <= 6 and text.isascii() and text.isdigit() else None


def _exception_events(events: object) -> list[Mapping[str, object]]:
    """Attributes of the well-formed ``exception`` events, oldest first."""
    if not isinstance(events, Sequence) or isinstance(events, str):
        return []
    return [
        e[1]
        for e in events[-_EVENT_LIMIT:]
        if isinstance(e, Sequence) and len(e) == 2 and e[0] == "exception"
        and isinstance(e[1], Mapping)
    ]


def _strings(body: object) -> str:
    """The string leaves of a decoded JSON body, bounded in depth and count (bodies can nest)."""
    return " ".join(itertools.islice(_leaves(body, 0), 64))[:_SCAN_LIMIT]


def _leaves(value: object, depth: int) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth < 4 and isinstance(value, Mapping | list | tuple):
        items = value.values() if isinstance(value, Mapping) else value
        for item in itertools.islice(items, 32):
            yield from _leaves(item, depth + 1)


def _scrub(text: str) -> str:
    """``text`` with API keys, bearer tokens, credentials and e-mail addresses redacted."""
    return redact(text)


def _short(message: str) -> str:
    """A one-line, scrubbed message of at most 200 characters."""
    if not isinstance(message, str):
        return ""
    # Scrub before truncating, so that a cut can never leave a partial secret unrecognised.
    text = " ".join(_scrub(message[:_SCAN_LIMIT]).split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
