"""Error taxonomy: the pinned mapping, real openai / anthropic exceptions, HTTP statuses, spans,
application exceptions, secret scrubbing, and totality (classify never raises)."""

from __future__ import annotations

import asyncio
import enum
import pickle
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, NoReturn

import anthropic
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm.core import exceptions as app
from otel_llm.core.errors import (
    ERROR_TYPES,
    OTHER,
    classify,
    classify_attributes,
    classify_call,
    classify_exception,
    classify_http_status,
    error_info,
)
from otel_llm.core.types import ErrorInfo, LLMCall

PINNED = [
    ("rate_limit", "resource_error", "high"),
    ("timeout", "external_service", "high"),
    ("connection", "external_service", "high"),
    ("server_error", "external_service", "high"),
    ("overloaded", "external_service", "high"),
    ("authentication", "authentication", "critical"),
    ("permission_denied", "authorization", "high"),
    ("invalid_request", "validation", "low"),
    ("context_length_exceeded", "validation", "medium"),
    ("not_found", "validation", "high"),
    ("content_filter", "business_logic", "medium"),
    ("cancelled", "system_error", "low"),
    ("_OTHER", "system_error", "high"),
]


@pytest.mark.parametrize(("error_type", "category", "severity"), PINNED)
def test_pinned_mapping(error_type: str, category: str, severity: str) -> None:
    assert ERROR_TYPES[error_type] == (category, severity)
    info = error_info(error_type, "boom")
    assert (info.type, info.category, info.severity, info.message) == (
        error_type, category, severity, "boom",
    )
    # Each type value is also understood as a string, e.g. an ``error.type`` read back.
    assert classify(error_type).type == error_type


def test_the_mapping_has_exactly_the_pinned_types() -> None:
    assert set(ERROR_TYPES) == {row[0] for row in PINNED}
    assert OTHER == "_OTHER"


def test_unknown_error_type_is_other() -> None:
    assert error_info("no_such_type") == ErrorInfo("system_error", "high", "_OTHER")


# --- real SDK exceptions -------------------------------------------------------------------------
REQUEST = httpx2.Request("POST", "https://api.example.test/v1/chat")


def _response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=REQUEST)


def _openai(cls: type[openai.APIStatusError], status: int, body: object = None) -> Exception:
    message = body.get("message") if isinstance(body, dict) else None
    return cls(f"Error code: {status} - {message}", response=_response(status), body=body)


def _anthropic(
    cls: type[anthropic.APIStatusError], status: int, kind: str = "api_error", message: str = "x"
) -> Exception:
    # Anthropic keeps the whole body, with the error nested under "error".
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return cls(f"Error code: {status} - {body}", response=_response(status), body=body)


OPENAI_CONTEXT = {
    "message": "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130512 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded",
}
AZURE_CONTENT_FILTER = {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy.",
    "type": None,
    "param": "prompt",
    "code": "content_filter",
    "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {}},
}

SDK_CASES: list[tuple[str, Callable[[], BaseException], str]] = [
    ("openai rate limit", lambda: _openai(openai.RateLimitError, 429), "rate_limit"),
    ("openai timeout", lambda: openai.APITimeoutError(request=REQUEST), "timeout"),
    ("openai connection", lambda: openai.APIConnectionError(request=REQUEST), "connection"),
    ("openai auth", lambda: _openai(openai.AuthenticationError, 401), "authentication"),
    ("openai oauth", lambda: openai.OAuthError(response=_response(401), body=None),
     "authentication"),
    ("openai permission", lambda: _openai(openai.PermissionDeniedError, 403),
     "permission_denied"),
    ("openai not found", lambda: _openai(openai.NotFoundError, 404), "not_found"),
    ("openai bad request", lambda: _openai(openai.BadRequestError, 400, {"message": "bad"}),
     "invalid_request"),
    ("openai context length", lambda: _openai(openai.BadRequestError, 400, OPENAI_CONTEXT),
     "context_length_exceeded"),
    ("openai content filter (body only)",
     lambda: openai.BadRequestError("Error code: 400", response=_response(400),
                                    body=AZURE_CONTENT_FILTER), "content_filter"),
    ("openai unprocessable", lambda: _openai(openai.UnprocessableEntityError, 422),
     "invalid_request"),
    ("openai conflict", lambda: _openai(openai.ConflictError, 409), "invalid_request"),
    ("openai 500", lambda: _openai(openai.InternalServerError, 500), "server_error"),
    ("openai 503", lambda: _openai(openai.InternalServerError, 503), "server_error"),
    ("openai 504", lambda: _openai(openai.InternalServerError, 504), "timeout"),
    ("openai generic 402", lambda: _openai(openai.APIStatusError, 402), "invalid_request"),
    ("openai finish content filter", lambda: openai.ContentFilterFinishReasonError(),
     "content_filter"),
    ("anthropic rate limit", lambda: _anthropic(anthropic.RateLimitError, 429), "rate_limit"),
    ("anthropic timeout", lambda: anthropic.APITimeoutError(request=REQUEST), "timeout"),
    ("anthropic connection", lambda: anthropic.APIConnectionError(request=REQUEST),
     "connection"),
    ("anthropic auth", lambda: _anthropic(anthropic.AuthenticationError, 401), "authentication"),
    ("anthropic permission", lambda: _anthropic(anthropic.PermissionDeniedError, 403),
     "permission_denied"),
    ("anthropic not found", lambda: _anthropic(anthropic.NotFoundError, 404), "not_found"),
    ("anthropic prompt too long",
     lambda: _anthropic(anthropic.BadRequestError, 400, "invalid_request_error",
                        "prompt is too long: 210000 tokens > 200000 maximum"),
     "context_length_exceeded"),
    ("anthropic bad request", lambda: _anthropic(anthropic.BadRequestError, 400),
     "invalid_request"),
    ("anthropic 408", lambda: _anthropic(anthropic.RequestTimeoutError, 408), "timeout"),
    ("anthropic 413", lambda: _anthropic(anthropic.ContentTooLargeError, 413), "invalid_request"),
    ("anthropic 499", lambda: _anthropic(anthropic.ClientClosedRequestError, 499), "cancelled"),
    ("anthropic 500", lambda: _anthropic(anthropic.InternalServerError, 500), "server_error"),
    ("anthropic 503", lambda: _anthropic(anthropic.ServiceUnavailableError, 503), "server_error"),
    ("anthropic 504", lambda: _anthropic(anthropic.GatewayTimeoutError, 504), "timeout"),
    ("anthropic overloaded",
     lambda: _anthropic(anthropic.OverloadedError, 529, "overloaded_error", "Overloaded"),
     "overloaded"),
    ("anthropic credentials", lambda: anthropic.CredentialsError("no key"), "authentication"),
]


@pytest.mark.parametrize(("factory", "expected"), [c[1:] for c in SDK_CASES],
                         ids=[c[0] for c in SDK_CASES])
def test_sdk_exceptions(factory: Callable[[], BaseException], expected: str) -> None:
    info = classify(factory())
    assert info.type == expected
    assert (info.category, info.severity) == ERROR_TYPES[expected]


def test_anthropic_code_specific_subclass_is_matched_through_its_mro() -> None:
    # Anthropic raises e.g. RampLimitExceededError(RateLimitError) for one error_code.
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down",
                                       "details": {"error_code": "ramp_limit_exceeded"}}}
    exc = anthropic.RampLimitExceededError("x", response=_response(429), body=body)
    assert classify(exc).type == "rate_limit"


def _raise_from(client_call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as caught:
        client_call()
    return caught.value


def _openai_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test", base_url="https://api.example.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def _anthropic_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test", base_url="https://api.example.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def test_openai_context_length_raised_by_the_client() -> None:
    client = _openai_client(lambda r: httpx2.Response(400, json={"error": OPENAI_CONTEXT}))
    exc = _raise_from(lambda: client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    assert isinstance(exc, openai.BadRequestError)
    assert classify(exc).type == "context_length_exceeded"


def test_openai_read_timeout_raised_by_the_client() -> None:
    def handler(request: httpx2.Request) -> NoReturn:
        raise httpx2.ReadTimeout("timed out", request=request)

    exc = _raise_from(lambda: _openai_client(handler).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    assert isinstance(exc, openai.APITimeoutError)
    assert classify(exc).type == "timeout"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
         "overloaded"),
        (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
         "rate_limit"),
        (400, {"type": "error", "error": {"type": "invalid_request_error",
                                          "message": "prompt is too long: 201000 tokens"}},
         "context_length_exceeded"),
    ],
)
def test_anthropic_errors_raised_by_the_client(status: int, body: object, expected: str) -> None:
    client = _anthropic_client(lambda r: httpx2.Response(status, json=body))
    exc = _raise_from(lambda: client.messages.create(
        model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]))
    assert isinstance(exc, anthropic.APIStatusError)
    assert classify(exc).type == expected


def test_anthropic_connection_error_raised_by_the_client() -> None:
    def handler(request: httpx2.Request) -> NoReturn:
        raise httpx2.ConnectError("refused", request=request)

    exc = _raise_from(lambda: _anthropic_client(handler).messages.create(
        model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]))
    assert type(exc) is anthropic.APIConnectionError
    assert classify(exc).type == "connection"


def _fake(module: str, name: str, base: type[Exception] = Exception) -> type[Exception]:
    return type(name, (base,), {"__module__": module})


def test_sdk_names_match_only_inside_the_sdk_packages() -> None:
    # Matched by name and package, without importing anything: a future SDK version works...
    assert classify(_fake("openai._exceptions", "RateLimitError")("x")).type == "rate_limit"
    assert classify(_fake("anthropic", "OverloadedError")("x")).type == "overloaded"
    # ...but a same-named class elsewhere is not an SDK error.
    assert classify(_fake("openai_agents.errors", "RateLimitError")("x")).type == "_OTHER"
    assert classify(_fake("myapp", "OverloadedError")("x")).type == "_OTHER"


def test_user_subclass_of_an_sdk_error_is_matched() -> None:
    class Throttled(openai.RateLimitError):
        pass

    assert classify(_openai(Throttled, 429)).type == "rate_limit"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx2.ReadTimeout("t", request=REQUEST), "timeout"),
        (httpx2.ConnectTimeout("t", request=REQUEST), "timeout"),
        (httpx2.ConnectError("c", request=REQUEST), "connection"),
        (httpx2.RemoteProtocolError("disconnected", request=REQUEST), "connection"),
        (_fake("httpx._exceptions", "PoolTimeout")("t"), "timeout"),
        (_fake("httpcore", "ReadError")("r"), "connection"),
        (httpx2.HTTPStatusError("x", request=REQUEST, response=_response(429)), "rate_limit"),
    ],
)
def test_http_client_exceptions(exc: BaseException, expected: str) -> None:
    assert classify(exc).type == expected


class _Code(enum.Enum):
    DEADLINE_EXCEEDED = 4
    UNAVAILABLE = 14
    DATA_LOSS = 15


def _grpc_error(code: _Code) -> Exception:
    # Shaped like grpc.aio.AioRpcError: code() returns a StatusCode member.
    cls = _fake("grpc.aio._call", "AioRpcError")
    cls.code = lambda self: code  # type: ignore[attr-defined]
    return cls("rpc failed")


def test_grpc_style_exceptions() -> None:
    assert classify(_grpc_error(_Code.DEADLINE_EXCEEDED)).type == "timeout"
    assert classify(_grpc_error(_Code.UNAVAILABLE)).type == "server_error"
    assert classify(_grpc_error(_Code.DATA_LOSS)).type == "_OTHER"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "timeout"),
        (asyncio.TimeoutError(), "timeout"),
        (ConnectionResetError(), "connection"),
        (ConnectionRefusedError(), "connection"),
        (asyncio.CancelledError(), "cancelled"),
        (KeyboardInterrupt(), "cancelled"),
        (PermissionError(), "permission_denied"),
        (FileNotFoundError(), "not_found"),
        (ValueError("bad temperature"), "invalid_request"),
        (TypeError("unexpected keyword"), "invalid_request"),
        (ValueError("maximum context length exceeded"), "context_length_exceeded"),
        (MemoryError(), "_OTHER"),
        (KeyError("k"), "_OTHER"),
        (RuntimeError("x"), "_OTHER"),
        (Exception(), "_OTHER"),
    ],
)
def test_builtin_exceptions(exc: BaseException, expected: str) -> None:
    assert classify_exception(exc).type == expected


def test_wrapped_sdk_error_is_classified_by_its_cause() -> None:
    def wrapped(inner: BaseException, outer: BaseException) -> BaseException:
        try:
            raise outer from inner
        except BaseException as exc:
            return exc

    limited = _openai(openai.RateLimitError, 429)
    info = classify(wrapped(limited, RuntimeError("retrieval chain failed")))
    assert (info.type, info.message) == ("rate_limit", "retrieval chain failed")
    # A wrapper that names a type itself keeps it; implicit context is not followed.
    assert classify(wrapped(limited, ValueError("bad"))).type == "invalid_request"
    try:
        try:
            raise limited
        except Exception:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        assert classify(exc).type == "_OTHER"


def test_status_code_attribute_of_other_sdks() -> None:
    exc = _fake("mistralai.models", "SDKError")("x")
    exc.status_code = 429  # type: ignore[attr-defined]
    assert classify(exc).type == "rate_limit"


# --- HTTP statuses -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "invalid_request"), (409, "invalid_request"), (413, "invalid_request"),
        (422, "invalid_request"), (402, "invalid_request"), (418, "invalid_request"),
        (401, "authentication"), (403, "permission_denied"), (404, "not_found"),
        (408, "timeout"), (504, "timeout"), (429, "rate_limit"), (499, "cancelled"),
        (500, "server_error"), (502, "server_error"), (503, "server_error"),
        (501, "server_error"), (529, "overloaded"), (200, "_OTHER"), (302, "_OTHER"),
        (0, "_OTHER"), (-1, "_OTHER"), (10**30, "_OTHER"),
    ],
)
def test_http_status(status: int, expected: str) -> None:
    assert classify_http_status(status).type == expected
    assert classify(status).type == expected


def test_http_status_refined_by_message() -> None:
    assert classify_http_status(400, "prompt is too long").type == "context_length_exceeded"
    assert classify_http_status(400, "content_policy_violation").type == "content_filter"
    # Only an invalid request is refined: a 429 stays a rate limit whatever it says.
    assert classify_http_status(429, "too many tokens per minute").type == "rate_limit"
    assert classify(HTTPStatus.TOO_MANY_REQUESTS).type == "rate_limit"
    assert classify(True).type == "_OTHER"


# --- span attributes and events ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"error.type": "rate_limit"}, "rate_limit"),
        ({"error.type": "RateLimitError"}, "rate_limit"),
        ({"error.type": "openai.RateLimitError"}, "rate_limit"),
        ({"error.type": "anthropic.OverloadedError"}, "overloaded"),
        ({"error.type": "anthropic._exceptions.GatewayTimeoutError"}, "timeout"),
        ({"error.type": "httpx.ReadTimeout"}, "timeout"),
        ({"error.type": "asyncio.exceptions.CancelledError"}, "cancelled"),
        ({"error.type": "429"}, "rate_limit"),
        ({"error.type": "500"}, "server_error"),
        ({"error.type": "StatusCode.DEADLINE_EXCEEDED"}, "timeout"),
        ({"error.type": "_OTHER", "http.response.status_code": 401}, "authentication"),
        ({"error.type": "SomethingElse", "http.status_code": "403"}, "permission_denied"),
        ({"http.response.status_code": 529}, "overloaded"),
        ({"rpc.grpc.status_code": 8}, "rate_limit"),
        ({"error.type": "timeout", "http.response.status_code": 500}, "timeout"),
        ({}, "_OTHER"),
        ({"http.response.status_code": True}, "_OTHER"),
    ],
)
def test_span_attributes(attributes: Mapping[str, object], expected: str) -> None:
    assert classify_attributes(attributes).type == expected
    assert classify(attributes).type == expected


def test_error_type_refined_by_description_and_events() -> None:
    described = classify_attributes(
        {"error.type": "BadRequestError"}, "Error code: 400 - maximum context length is 8192"
    )
    assert described.type == "context_length_exceeded"
    assert described.message == "Error code: 400 - maximum context length is 8192"
    from_event = classify_attributes(
        {"error.type": "openai.BadRequestError"},
        events=[("exception", {"exception.type": "openai.BadRequestError",
                               "exception.message": "Your request was flagged by our system"})],
    )
    assert from_event.type == "content_filter"


def test_exception_events_latest_first() -> None:
    events = [
        ("exception", {"exception.type": "openai.RateLimitError", "exception.message": "retry"}),
        ("gen_ai.choice", {"index": 0}),
        ("exception", {"exception.type": "openai.APITimeoutError", "exception.message": "late"}),
        ("broken",),  # malformed events are skipped
        "garbage",
    ]
    info = classify_attributes({}, "", events)  # type: ignore[arg-type]
    assert (info.type, info.message) == ("timeout", "late")


def test_exception_event_with_unknown_type_falls_back_to_its_message() -> None:
    events = [("exception", {"exception.type": "MyError", "exception.message": "rate limited"})]
    assert classify_attributes({}, "", events).type == "rate_limit"


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("RateLimitError: Error code: 429 - slow down", "rate_limit"),
        ("Error code: 503 - upstream unavailable", "server_error"),
        ("Request timed out.", "timeout"),
        ("Connection error.", "connection"),
        ("Overloaded", "overloaded"),
        ("Incorrect API key provided: sk-abc***def", "authentication"),
        ("invalid x-api-key", "authentication"),
        ("something went wrong", "_OTHER"),
        ("", "_OTHER"),
    ],
)
def test_status_description_text(description: str, expected: str) -> None:
    assert classify_attributes({}, description).type == expected


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("rate_limit", "rate_limit"), ("openai.APIConnectionError", "connection"),
     ("404", "not_found"), ("TimeoutError", "timeout"), ("nonsense", "_OTHER"), (None, "_OTHER")],
)
def test_classify_call(error_type: str | None, expected: str) -> None:
    call = LLMCall(operation="chat", is_error=True, error_type=error_type)
    assert classify_call(call).type == expected


def test_classify_call_keeps_the_category_the_span_carries() -> None:
    ours = LLMCall(operation="chat", is_error=True, error_type="_OTHER",
                   error_category="business_logic")
    assert classify_call(ours) == ErrorInfo("business_logic", "high", "_OTHER")
    bogus = LLMCall(operation="chat", is_error=True, error_type="timeout", error_category="nope")
    assert classify_call(bogus) == ErrorInfo("external_service", "high", "timeout")


# --- application exceptions ----------------------------------------------------------------------
APP_CASES = [
    (app.ValidationError, "VALIDATION_ERROR", 400, "validation", "low", "invalid_request"),
    (app.AuthenticationError, "AUTHENTICATION_ERROR", 401, "authentication", "critical",
     "authentication"),
    (app.AuthorizationError, "AUTHORIZATION_ERROR", 403, "authorization", "high",
     "permission_denied"),
    (app.NotFoundError, "NOT_FOUND", 404, "validation", "high", "not_found"),
    (app.BusinessLogicError, "BUSINESS_LOGIC_ERROR", 422, "business_logic", "medium", "_OTHER"),
    (app.ExternalServiceError, "EXTERNAL_SERVICE_ERROR", 502, "external_service", "high",
     "server_error"),
    (app.EmbeddingServiceError, "EMBEDDING_SERVICE_ERROR", 502, "external_service", "high",
     "server_error"),
    (app.VectorDatabaseError, "VECTOR_DATABASE_ERROR", 502, "external_service", "high",
     "server_error"),
    (app.LLMServiceError, "LLM_SERVICE_ERROR", 502, "external_service", "high", "server_error"),
    (app.ResourceExhaustedError, "RESOURCE_EXHAUSTED", 429, "resource_error", "high",
     "rate_limit"),
    (app.RateLimitError, "RATE_LIMIT_EXCEEDED", 429, "resource_error", "high", "rate_limit"),
    (app.InternalError, "INTERNAL_ERROR", 500, "system_error", "high", "_OTHER"),
]


@pytest.mark.parametrize(("cls", "code", "status", "category", "severity", "error_type"),
                         APP_CASES)
def test_application_exceptions(
    cls: type[app.CategorizedError], code: str, status: int, category: str, severity: str,
    error_type: str,
) -> None:
    exc = cls("it failed", details={"id": 7})
    assert str(exc) == "it failed"
    assert (exc.code, exc.http_status, exc.error_type) == (code, status, error_type)
    assert exc.to_dict() == {
        "code": code, "message": "it failed", "category": category, "severity": severity,
        "details": exc.details,
    }
    assert exc.details["id"] == 7
    info = classify(exc)
    assert (info.category, info.severity, info.type, info.message) == (
        category, severity, error_type, "it failed",
    )


def test_application_exception_overrides() -> None:
    exc = app.ValidationError("bad", code="BAD_QUERY", severity="medium", http_status=422)
    assert exc.to_dict()["code"] == "BAD_QUERY"
    assert exc.http_status == 422
    assert classify(exc) == ErrorInfo("validation", "medium", "invalid_request")
    # A type outside the vocabulary is reported as _OTHER, the category is kept.
    odd = app.BusinessLogicError("no", error_type="quota_policy")
    assert classify(odd) == ErrorInfo("business_logic", "medium", "_OTHER")
    with pytest.raises(ValueError, match="severity"):
        app.ValidationError("bad", severity="fatal")  # type: ignore[arg-type]


def test_external_service_and_retry_after_details() -> None:
    assert app.LLMServiceError("down").to_dict()["details"] == {"service": "llm"}
    assert app.VectorDatabaseError("down", service="qdrant").service == "qdrant"
    timeout = app.LLMServiceError("slow", error_type="timeout")
    assert classify(timeout).type == "timeout"
    limited = app.RateLimitError("slow down", retry_after=2.5)
    assert limited.retry_after == 2.5
    assert limited.to_dict()["details"] == {"retry_after": 2.5}
    copy = pickle.loads(pickle.dumps(limited))
    assert (copy.to_dict(), copy.retry_after) == (limited.to_dict(), 2.5)


def test_our_names_win_over_sdk_name_matching() -> None:
    # Ours share names with the SDKs' but live in otel_llm: recognised as ours first.
    assert app.RateLimitError.__module__.startswith("otel_llm")
    assert classify(app.AuthenticationError("k", severity="high")).severity == "high"


# --- messages never carry secrets ----------------------------------------------------------------
def test_secrets_are_scrubbed_from_messages() -> None:
    text = (
        "Incorrect API key provided: sk-proj-abc123DEF456ghi789. Header Authorization: Bearer "
        "xyz.abc-123 for jane.doe+llm@example.co.uk, anthropic sk-ant-api03-AbC_dEf-123456, "
        'api_key="hunter22", password: swordfish'
    )
    message = classify(RuntimeError(text)).message
    for secret in ("abc123DEF", "xyz.abc", "jane.doe", "example.co.uk", "AbC_dEf", "hunter22",
                   "swordfish"):
        assert secret not in message
    assert "provided: [REDACTED]" in message
    assert "Bearer [REDACTED]" in message
    assert "[EMAIL]" in message


def test_messages_are_one_short_line() -> None:
    info = classify_http_status(500, "line one\n  line two " + "x" * 1000)
    assert info.message.startswith("line one line two x")
    assert len(info.message) == 200
    # A key cut by truncation is still redacted: scrubbing happens first.
    tail = classify_http_status(500, "a" * 190 + " sk-" + "k" * 40).message
    assert "kkkk" not in tail


# --- totality ------------------------------------------------------------------------------------
class _Boom(Exception):
    pass


def _raise(*_: object) -> NoReturn:
    raise _Boom("hostile")


class _HostileObject:
    __str__ = __repr__ = __getattr__ = __eq__ = __hash__ = _raise


class _HostileException(Exception):
    __str__ = _raise


class _HostileStatus(Exception):
    @property
    def status_code(self) -> int:
        raise _Boom("no status")


class _HostileMapping(Mapping[str, object]):
    def __getitem__(self, key: str) -> object:
        raise _Boom("no item")

    def __iter__(self) -> Iterator[str]:
        raise _Boom("no iter")

    def __len__(self) -> int:
        return 1


class _HostileSDKError(openai.BadRequestError):
    @property
    def body(self) -> object:
        raise _Boom("no body")

    @body.setter
    def body(self, value: object) -> None:
        pass


def _cyclic_body() -> dict[str, object]:
    body: dict[str, object] = {"message": "bad"}
    body["self"] = body
    return body


HOSTILE: list[object] = [
    _HostileObject(), _HostileException("x"), _HostileStatus("x"), _HostileMapping(),
    _HostileSDKError("x", response=_response(400), body=None), _fake(123, "RateLimitError")("x"),  # type: ignore[arg-type]
    openai.BadRequestError("x", response=_response(400), body=_cyclic_body()),
    openai.BadRequestError("x", response=_response(400), body=[[[[[["deep"]]]]]] * 10_000),
    Exception(_HostileObject()), SystemExit(3), GeneratorExit(), object(), None, 1.5, b"\xff",
    [], (), set(), type, ValueError, Ellipsis,
]


@pytest.mark.parametrize("obj", HOSTILE, ids=lambda o: type(o).__name__)
def test_classify_survives_hostile_inputs(obj: object) -> None:
    _assert_consistent(classify(obj))


def test_every_entry_point_survives_hostile_inputs() -> None:
    hostile: Any = _HostileObject()
    for info in (
        classify_exception(hostile), classify_http_status(hostile, hostile),
        classify_attributes(hostile, hostile, hostile), classify_attributes({}, "", hostile),
        classify_call(hostile), error_info(hostile, hostile),
        classify_attributes({"error.type": "rate_limit"}, "", [("exception", _HostileMapping())]),
    ):
        _assert_consistent(info)


def _assert_consistent(info: object) -> None:
    assert isinstance(info, ErrorInfo)
    assert info.type in ERROR_TYPES
    assert (info.category, info.severity) == ERROR_TYPES[info.type]
    assert isinstance(info.message, str)
    assert len(info.message) <= 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
EXCEPTION_CLASSES = st.sampled_from(
    [Exception, ValueError, TimeoutError, ConnectionError, OSError, KeyError, MemoryError,
     asyncio.CancelledError, KeyboardInterrupt, SystemExit, UnicodeDecodeError, _Boom,
     _HostileException, _HostileStatus]
)


def _build(cls: type[BaseException], args: list[object]) -> object:
    try:
        return cls(*args)
    except Exception:  # some classes reject arbitrary args; the class itself is still an input
        return cls


def _sdk_error(sdk: Any, status: int, body: object, message: str) -> object:
    return sdk.APIStatusError(message, response=_response(status), body=body)


ANYTHING = st.one_of(
    JSON,
    st.binary(),
    st.dictionaries(st.text(), JSON),
    st.dictionaries(
        st.sampled_from(["error.type", "http.response.status_code", "http.status_code",
                         "rpc.grpc.status_code"]),
        JSON | st.sampled_from(["429", "openai.BadRequestError", "_OTHER", "StatusCode.X"]),
    ),
    st.builds(_build, EXCEPTION_CLASSES, st.lists(JSON | st.builds(_HostileObject), max_size=3)),
    st.builds(_sdk_error, st.sampled_from([openai, anthropic]), st.integers(100, 599), JSON,
              st.text()),
    st.builds(_HostileObject),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANYTHING)
def test_classify_is_total_and_consistent(obj: object) -> None:
    _assert_consistent(classify(obj))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["error.type", "http.response.status_code", "x"]) | st.text(),
                    JSON, max_size=4),
    st.text(),
    st.lists(st.tuples(st.sampled_from(["exception", "other"]),
                       st.dictionaries(st.sampled_from(["exception.type", "exception.message"]),
                                       st.text() | JSON)), max_size=4),
)
def test_classify_attributes_is_total(attributes: dict[str, object], description: str,
                                      events: list[tuple[str, dict[str, object]]]) -> None:
    _assert_consistent(classify_attributes(attributes, description, events))


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-", min_size=8),
       st.text())
def test_keys_never_survive_in_messages(before: str, key: str, after: str) -> None:
    message = classify(RuntimeError(f"{before} sk-proj-{key} {after}")).message
    assert f"sk-proj-{key}" not in message
    assert len(message) <= 200


def test_classify_reads_a_finished_sdk_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("chat x") as span:
        span.set_attribute("error.type", "timeout")
        span.set_status(Status(StatusCode.ERROR, "took too long"))
    with tracer.start_as_current_span("chat y", record_exception=False) as span:
        span.add_event("exception", {"exception.type": "openai.RateLimitError",
                                     "exception.message": "slow down"})
    timed_out, limited = exporter.get_finished_spans()
    assert classify(timed_out).type == "timeout"
    assert classify(timed_out).message == "took too long"
    assert (classify(limited).type, classify(limited).category) == ("rate_limit", "resource_error")
