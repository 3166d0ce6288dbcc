"""The real ``anthropic`` client, instrumented, over a ``MockTransport``."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import SpanKind

from otel_llm import semconv as sc
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from tests.conftest import Harness
from tests.instrumentation.llm_fakes import (
    CLAUDE,
    STREAM_TEXT,
    AnthropicServer,
    anthropic_client,
    async_anthropic_client,
)
from tests.pricing_oracle import genai_prices_cost
from tests.test_hooks import count_of, sum_of

MESSAGES = [{"role": "user", "content": "Say hello"}]
# Cache reads and writes are summed into input tokens (DESIGN.md §3), priced at their rates.
COST = genai_prices_cost(CLAUDE, "anthropic", input_tokens=1300, output_tokens=50,
                         cache_read_tokens=1000, cache_write_tokens=200)


def assert_accounted(harness: Harness, attrs: dict[str, Any], stream: bool) -> None:
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == CLAUDE
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == CLAUDE
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "msg_01"
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 1024
    assert attrs[sc.SERVER_ADDRESS] == "api.anthropic.com"
    assert attrs[sc.SERVER_PORT] == 443
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1300
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 50
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 200
    assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(COST, rel=1e-9)
    assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs) is stream
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert count_of(harness, sc.METRIC_TIME_TO_FIRST_CHUNK) == (1 if stream else 0)
    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(COST, rel=1e-9)


def our_span(harness: Harness) -> dict[str, Any]:
    span = harness.span()
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    return dict(span.attributes or {})


@pytest.mark.usefixtures("anthropic_instrumented")
@pytest.mark.parametrize("stream", [False, True])
def test_create_sync(harness: Harness, stream: bool) -> None:
    client = anthropic_client(AnthropicServer())
    result = client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES,
                                    stream=stream)
    if stream:
        assert isinstance(result, anthropic.Stream)
        assert [e.type for e in result][-1] == "message_stop"
    else:
        assert result.content[0].text == "Hello!"
    assert_accounted(harness, our_span(harness), stream)


@pytest.mark.usefixtures("anthropic_instrumented")
@pytest.mark.parametrize("stream", [False, True])
def test_create_async(harness: Harness, stream: bool) -> None:
    async def main() -> None:
        client = async_anthropic_client(AnthropicServer())
        result = await client.messages.create(model=CLAUDE, max_tokens=1024,
                                              messages=MESSAGES, stream=stream)
        if stream:
            assert isinstance(result, anthropic.AsyncStream)
            assert [e.type async for e in result][-1] == "message_stop"

    asyncio.run(main())
    assert_accounted(harness, our_span(harness), stream)


@pytest.mark.usefixtures("anthropic_instrumented")
@pytest.mark.parametrize("helper", ["text_stream", "get_final_message", "until_done", "iterate"])
def test_stream_helper_sync(harness: Harness, helper: str) -> None:
    client = anthropic_client(AnthropicServer())
    with client.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES) as stream:
        if helper == "text_stream":
            assert "".join(stream.text_stream) == "".join(STREAM_TEXT)
        elif helper == "get_final_message":
            assert stream.get_final_message().usage.output_tokens == 50
        elif helper == "until_done":
            stream.until_done()
        else:
            assert [e.type for e in stream][-1] == "message_stop"
        assert stream.get_final_text() == "".join(STREAM_TEXT)
    assert_accounted(harness, our_span(harness), stream=True)


@pytest.mark.usefixtures("anthropic_instrumented")
def test_stream_helper_async(harness: Harness) -> None:
    async def main() -> str:
        client = async_anthropic_client(AnthropicServer())
        async with client.messages.stream(model=CLAUDE, max_tokens=1024,
                                          messages=MESSAGES) as stream:
            text = "".join([t async for t in stream.text_stream])
            assert (await stream.get_final_message()).stop_reason == "end_turn"
            return text

    assert asyncio.run(main()) == "".join(STREAM_TEXT)
    assert_accounted(harness, our_span(harness), stream=True)


@pytest.mark.usefixtures("anthropic_instrumented")
@pytest.mark.parametrize("stream", [False, True])
def test_beta_messages_create(harness: Harness, stream: bool) -> None:
    async def main() -> None:
        client = async_anthropic_client(AnthropicServer())
        result = await client.beta.messages.create(model=CLAUDE, max_tokens=1024,
                                                   messages=MESSAGES, stream=stream)
        if stream:
            assert [e.type async for e in result][-1] == "message_stop"

    sync = anthropic_client(AnthropicServer()).beta.messages.create(
        model=CLAUDE, max_tokens=1024, messages=MESSAGES, stream=stream)
    if stream:
        assert [e.type for e in sync][-1] == "message_stop"
    asyncio.run(main())
    spans = harness.spans()
    assert len(spans) == 2 and all(s.name == f"chat {CLAUDE}" for s in spans)
    for span in spans:
        attrs = dict(span.attributes or {})
        assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(COST, rel=1e-9)
        assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs) is stream


@pytest.mark.usefixtures("anthropic_instrumented")
def test_beta_messages_stream_helper(harness: Harness) -> None:
    client = anthropic_client(AnthropicServer())
    with client.beta.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "".join(STREAM_TEXT)
    assert_accounted(harness, our_span(harness), stream=True)


@pytest.mark.usefixtures("anthropic_instrumented")
def test_stream_helper_left_early_and_dropped(harness: Harness) -> None:
    client = anthropic_client(AnthropicServer())
    with client.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES) as stream:
        for _ in stream:
            break
    assert len(harness.spans()) == 1
    raw = client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES, stream=True)
    ref = weakref.ref(raw)
    del raw
    gc.collect()
    assert ref() is None
    assert len(harness.spans()) == 2
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 2


@pytest.mark.usefixtures("anthropic_instrumented")
def test_provider_follows_bedrock_and_vertex_base_urls(harness: Harness) -> None:
    client = anthropic_client(AnthropicServer(),
                              base_url="https://bedrock-runtime.us-east-1.amazonaws.com")
    client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)
    attrs = our_span(harness)
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[sc.SERVER_ADDRESS] == "bedrock-runtime.us-east-1.amazonaws.com"


# --- anthropic 2.x traces itself ------------------------------------------------------------------
def sdk_spans(harness: Harness) -> list[Any]:
    return [s for s in harness.spans() if s.name == "anthropic.messages.create"]


@pytest.mark.parametrize("stream", [False, True])
def test_with_the_sdks_own_tracing_one_call_is_accounted_once(
    harness: Harness, anthropic_instrumented: AnthropicInstrumentor, stream: bool
) -> None:
    client = anthropic_client(AnthropicServer(),
                              open_telemetry={"tracer_provider": harness.tracer_provider})
    result = client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES,
                                    stream=stream)
    if stream:
        list(result)
    [sdk] = sdk_spans(harness)
    ours = next(s for s in harness.spans() if s is not sdk)
    assert sdk.kind is SpanKind.CLIENT
    assert sdk.parent is not None and sdk.parent.span_id == ours.context.span_id
    assert_accounted(harness, dict(ours.attributes or {}), stream)
    # The SDK's span passes through unpriced: the call was accounted on ours.
    assert sc.OTEL_LLM_COST_USD not in (sdk.attributes or {})


def test_the_sdks_own_tracing_alone_is_accounted_by_the_processor(harness: Harness) -> None:
    client = anthropic_client(AnthropicServer(),
                              open_telemetry={"tracer_provider": harness.tracer_provider})
    client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)
    [sdk] = sdk_spans(harness)
    assert len(harness.spans()) == 1
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(COST, rel=1e-9)
    assert (sdk.attributes or {})[sc.OTEL_LLM_COST_USD] == pytest.approx(COST, rel=1e-9)
