"""SDK errors: classified by the core, span status ERROR, the exception re-raised unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.trace import StatusCode

from otel_llm import semconv as sc
from tests.conftest import Harness
from tests.instrumentation.llm_fakes import (
    ANTHROPIC_HTTP,
    API_KEY,
    CLAUDE,
    OPENAI_HTTP,
    AnthropicServer,
    Handler,
    OpenAIServer,
    anthropic_client,
    async_openai_client,
    openai_client,
)
from tests.test_hooks import count_of, sum_of

MESSAGES = [{"role": "user", "content": "Say hello"}]


def status(code: int, message: str, code_name: str | None = None,
           headers: dict[str, str] | None = None, http: Any = OPENAI_HTTP) -> Handler:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code_name}}
    return lambda request: http.Response(code, json=body, headers=headers)


def raises(exc: BaseException) -> Handler:
    def handler(request: Any) -> Any:
        raise exc

    return handler


OPENAI_CASES = [
    ("rate_limit", openai.RateLimitError,
     status(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": "20"}),
     "rate_limit", "resource_error"),
    ("timeout", openai.APITimeoutError, raises(OPENAI_HTTP.ReadTimeout("timed out")),
     "timeout", "external_service"),
    ("connection", openai.APIConnectionError, raises(OPENAI_HTTP.ConnectError("refused")),
     "connection", "external_service"),
    ("authentication", openai.AuthenticationError,
     status(401, f"Incorrect API key provided: {API_KEY}", "invalid_api_key"),
     "authentication", "authentication"),
    ("permission", openai.PermissionDeniedError, status(403, "Forbidden"),
     "permission_denied", "authorization"),
    ("bad_request", openai.BadRequestError, status(400, "Invalid 'temperature'"),
     "invalid_request", "validation"),
    ("context_length", openai.BadRequestError,
     status(400, "This model's maximum context length is 128000 tokens. However, your "
                 "messages resulted in 130000 tokens.", "context_length_exceeded"),
     "context_length_exceeded", "validation"),
    ("content_filter", openai.BadRequestError,
     status(400, "The response was filtered due to the prompt triggering Azure OpenAI's "
                 "content management policy.", "content_filter"),
     "content_filter", "business_logic"),
    ("server", openai.InternalServerError, status(500, "The server had an error"),
     "server_error", "external_service"),
]


def assert_failed(harness: Harness, error_type: str, category: str) -> dict[str, Any]:
    span = harness.span()
    attrs = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attrs[sc.ERROR_TYPE] == error_type
    assert attrs[sc.OTEL_LLM_ERROR_CATEGORY] == category
    assert sc.OTEL_LLM_COST_USD not in attrs
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert sum_of(harness, sc.METRIC_ERRORS, **{sc.ERROR_TYPE: error_type}) == 1
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    # The API key the provider echoed back never reaches the telemetry.
    assert API_KEY not in str(events[0].attributes)
    return attrs


@pytest.mark.usefixtures("openai_instrumented")
@pytest.mark.parametrize(("name", "exc_type", "handler", "error_type", "category"),
                         OPENAI_CASES, ids=[c[0] for c in OPENAI_CASES])
def test_openai_errors(harness: Harness, name: str, exc_type: type[Exception],
                       handler: Handler,
                       error_type: str, category: str) -> None:
    client = openai_client(OpenAIServer(override=handler))
    with pytest.raises(exc_type) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(caught.value) is exc_type  # re-raised as the SDK raised it
    assert_failed(harness, error_type, category)


@pytest.mark.usefixtures("openai_instrumented")
def test_openai_async_error(harness: Harness) -> None:
    async def main() -> None:
        client = async_openai_client(OpenAIServer(override=status(429, "Slow down")))
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)

    with pytest.raises(openai.RateLimitError):
        asyncio.run(main())
    assert_failed(harness, "rate_limit", "resource_error")


@pytest.mark.usefixtures("openai_instrumented")
def test_retried_429_with_retry_after_is_still_a_failure(harness: Harness) -> None:
    server = OpenAIServer(override=status(429, "Rate limit", headers={"retry-after-ms": "1"}))
    client = openai_client(server, max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 3  # the SDK retried under one span
    assert_failed(harness, "rate_limit", "resource_error")


class Interrupt(BaseException):
    """Not an Exception: the SDK lets it through as is, so identity can be checked."""


@pytest.mark.usefixtures("openai_instrumented")
def test_exception_is_the_very_same_object(harness: Harness) -> None:
    boom = Interrupt()
    client = openai_client(OpenAIServer(override=raises(boom)))
    with pytest.raises(Interrupt) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value is boom
    assert harness.span().status.status_code is StatusCode.ERROR


ANTHROPIC_CASES = [
    (anthropic.RateLimitError, status(429, "Number of requests has exceeded your rate limit",
                                      headers={"retry-after": "10"}, http=ANTHROPIC_HTTP),
     "rate_limit", "resource_error"),
    (anthropic.OverloadedError, status(529, "Overloaded", http=ANTHROPIC_HTTP), "overloaded",
     "external_service"),
    (anthropic.BadRequestError, status(400, "prompt is too long: 210000 tokens > 200000 maximum",
                                       http=ANTHROPIC_HTTP),
     "context_length_exceeded", "validation"),
    (anthropic.AuthenticationError, status(401, "invalid x-api-key", http=ANTHROPIC_HTTP),
     "authentication", "authentication"),
    (anthropic.InternalServerError, status(500, "Internal server error", http=ANTHROPIC_HTTP),
     "server_error", "external_service"),
    (anthropic.APITimeoutError, raises(ANTHROPIC_HTTP.ReadTimeout("timed out")), "timeout",
     "external_service"),
]


@pytest.mark.usefixtures("anthropic_instrumented")
@pytest.mark.parametrize(("exc_type", "handler", "error_type", "category"), ANTHROPIC_CASES,
                         ids=[c[2] for c in ANTHROPIC_CASES])
def test_anthropic_errors(harness: Harness, exc_type: type[Exception],
                          handler: Handler,
                          error_type: str, category: str) -> None:
    client = anthropic_client(AnthropicServer(override=handler))
    with pytest.raises(exc_type) as caught:
        client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)
    assert type(caught.value) is exc_type
    assert_failed(harness, error_type, category)


@pytest.mark.usefixtures("anthropic_instrumented")
def test_anthropic_overloaded_mid_stream(harness: Harness) -> None:
    from tests.instrumentation.llm_fakes import claude_events, sse, stream_response

    events = [*claude_events()[:4], ("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})]
    client = anthropic_client(AnthropicServer(
        override=lambda request: stream_response(sse(events, done=False), ANTHROPIC_HTTP)))
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(
        model=CLAUDE, max_tokens=1024, messages=MESSAGES
    ) as stream:
        stream.until_done()
    span = harness.span()
    assert span.status.status_code is StatusCode.ERROR
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    # What message_start reported is kept. (The error arrives in a 200 response: its type is
    # named only by the body's error.type, which the core does not read yet.)
    assert (span.attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1300
