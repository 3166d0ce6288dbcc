"""The real ``openai`` client, instrumented, over a ``MockTransport``: one span per call."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind

from otel_llm import semconv as sc
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from tests.conftest import Harness
from tests.instrumentation.llm_fakes import (
    GPT,
    STREAM_TEXT,
    OpenAIServer,
    async_openai_client,
    openai_client,
)
from tests.pricing_oracle import genai_prices_cost
from tests.test_hooks import count_of, sum_of

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MESSAGES = [{"role": "user", "content": "Say hello"}]
CHAT_COST = genai_prices_cost(GPT, "openai", input_tokens=1200, output_tokens=300,
                              cache_read_tokens=1000)


def attrs_of(harness: Harness) -> dict[str, Any]:
    span = harness.span()
    assert span.kind is SpanKind.CLIENT
    return dict(span.attributes or {})


def assert_chat_accounting(harness: Harness, attrs: dict[str, Any], stream: bool) -> None:
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == GPT
    assert attrs[sc.SERVER_ADDRESS] == "api.openai.com"
    assert attrs[sc.SERVER_PORT] == 443
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 64
    assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(CHAT_COST, rel=1e-9)
    assert attrs[sc.GEN_AI_USAGE_COST] == attrs[sc.OTEL_LLM_COST_USD]
    assert sc.ERROR_TYPE not in attrs
    # Metrics: once.
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert count_of(harness, sc.METRIC_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 1
    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(CHAT_COST, rel=1e-9)
    assert count_of(harness, sc.METRIC_TIME_TO_FIRST_CHUNK) == (1 if stream else 0)
    assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs) is stream


def test_chat_sync(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                              temperature=0.2, max_tokens=256, seed=7)
    assert response.choices[0].message.content == "Hello!"
    span = harness.span()
    assert span.name == "chat gpt-4o"
    attrs = attrs_of(harness)
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attrs[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert attrs[sc.GEN_AI_REQUEST_SEED] == 7
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs  # content capture is off by default
    assert_chat_accounting(harness, attrs, stream=False)
    # The metrics name the server as the span does (semconv: port with the address).
    for point in harness.points(sc.METRIC_TOKEN_USAGE):
        assert point.attributes[sc.SERVER_ADDRESS] == attrs[sc.SERVER_ADDRESS]
        assert point.attributes[sc.SERVER_PORT] == attrs[sc.SERVER_PORT]


def test_chat_async(harness: Harness) -> None:
    async def main() -> Any:
        client = async_openai_client(OpenAIServer())
        return await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert asyncio.run(main()).choices[0].message.content == "Hello!"
    assert_chat_accounting(harness, attrs_of(harness), stream=False)


def test_chat_stream_sync_requests_usage_and_hides_its_chunk(harness: Harness) -> None:
    server = OpenAIServer()
    client = openai_client(server)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    # The usage-only chunk we asked for never reaches the caller.
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(STREAM_TEXT)
    attrs = attrs_of(harness)
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is True
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-2"
    assert_chat_accounting(harness, attrs, stream=True)


def test_chat_stream_async(harness: Harness) -> None:
    async def main() -> list[Any]:
        client = async_openai_client(OpenAIServer())
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                      stream=True)
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert chunks and all(chunk.choices for chunk in chunks)
    assert_chat_accounting(harness, attrs_of(harness), stream=True)


def test_caller_asking_for_usage_still_gets_the_usage_chunk(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert_chat_accounting(harness, attrs_of(harness), stream=True)


@pytest.mark.parametrize("how", ["kwarg", "extra_body"])
def test_caller_refusing_usage_is_respected(harness: Harness, how: str) -> None:
    server = OpenAIServer()
    client = openai_client(server)
    refuse: dict[str, Any] = {"stream_options": {"include_usage": False}}
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                        **(refuse if how == "kwarg" else {"extra_body": refuse})))
    assert server.requests[0]["stream_options"] == {"include_usage": False}
    attrs = attrs_of(harness)
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    assert sc.OTEL_LLM_COST_USD not in attrs


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_include_usage_can_be_switched_off(harness: Harness, monkeypatch: pytest.MonkeyPatch,
                                           openai_instrumented: OpenAIInstrumentor,
                                           how: str) -> None:
    openai_instrumented.uninstrument()
    if how == "env":
        monkeypatch.setenv("OTEL_LLM_OPENAI_INCLUDE_USAGE", "false")
        openai_instrumented.instrument(tracer_provider=harness.tracer_provider)
    else:
        openai_instrumented.instrument(tracer_provider=harness.tracer_provider,
                                       include_usage=False)
    server = OpenAIServer()
    list(openai_client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                       stream=True))
    assert "stream_options" not in server.requests[0]
    assert harness.span().attributes is not None


def test_chat_stream_helper_keeps_working(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "".join(STREAM_TEXT)
    assert "content.delta" in events
    assert_chat_accounting(harness, attrs_of(harness), stream=True)


def test_chat_tool_calls(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                 tools=tools, stream=True))
    assert chunks
    spans = harness.spans()
    assert len(spans) == 2
    for span in spans:
        attrs = span.attributes or {}
        assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
        assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(CHAT_COST, rel=1e-9)


@pytest.mark.parametrize("stream", [False, True])
def test_completions(harness: Harness, stream: bool) -> None:
    client = openai_client(OpenAIServer())
    result = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello",
                                       max_tokens=16, stream=stream)
    if stream:
        assert all(chunk.choices for chunk in result)
    attrs = attrs_of(harness)
    assert harness.span().name == "text_completion gpt-3.5-turbo-instruct"
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    expected = genai_prices_cost("gpt-3.5-turbo-instruct", "openai", input_tokens=12,
                                 output_tokens=5)
    assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1


def test_embeddings_sync_and_async(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    result = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(result.data[0].embedding) == 4

    async def main() -> None:
        await async_openai_client(OpenAIServer()).embeddings.create(
            model="text-embedding-3-small", input="hello", dimensions=4)

    asyncio.run(main())
    expected = genai_prices_cost("text-embedding-3-small", "openai", input_tokens=8,
                                 output_tokens=0)
    spans = harness.spans()
    assert [s.name for s in spans] == ["embeddings text-embedding-3-small"] * 2
    for span in spans:
        attrs = span.attributes or {}
        assert attrs[sc.GEN_AI_OPERATION_NAME] == "embeddings"
        assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 8
        assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 4
        assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 2


def assert_responses_span(harness: Harness, stream: bool) -> None:
    attrs = attrs_of(harness)
    assert harness.span().name == "chat gpt-4o"
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"  # Responses API = chat (DESIGN.md §8)
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "resp_1"
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 512
    assert_chat_accounting(harness, attrs, stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_sync(harness: Harness, stream: bool) -> None:
    client = openai_client(OpenAIServer())
    result = client.responses.create(model="gpt-4o", input="Say hello", max_output_tokens=512,
                                     stream=stream)
    if stream:
        events = [event.type for event in result]
        assert events[-1] == "response.completed"
    else:
        assert result.output_text == "Hello!"
    assert_responses_span(harness, stream)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_async(harness: Harness, stream: bool) -> None:
    async def main() -> None:
        client = async_openai_client(OpenAIServer())
        result = await client.responses.create(model="gpt-4o", input="Say hello",
                                               max_output_tokens=512, stream=stream)
        if stream:
            assert [e.type async for e in result][-1] == "response.completed"

    asyncio.run(main())
    assert_responses_span(harness, stream)


def test_responses_stream_helper(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    with client.responses.stream(model="gpt-4o", input="Say hello",
                                 max_output_tokens=512) as stream:
        final = stream.get_final_response()
    assert final.output_text == "".join(STREAM_TEXT)
    assert_responses_span(harness, stream=True)


def test_with_raw_response_is_accounted(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello!"
    assert_chat_accounting(harness, attrs_of(harness), stream=False)


@pytest.mark.parametrize(("base_url", "provider", "address", "port"), [
    ("https://myres.openai.azure.com/openai/deployments/gpt4o", "azure.ai.openai",
     "myres.openai.azure.com", 443),
    ("https://api.groq.com/openai/v1", "groq", "api.groq.com", 443),
    ("https://api.deepseek.com/v1", "deepseek", "api.deepseek.com", 443),
    ("https://api.mistral.ai/v1", "mistral_ai", "api.mistral.ai", 443),
    ("https://api.x.ai/v1", "x_ai", "api.x.ai", 443),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini",
     "generativelanguage.googleapis.com", 443),
    ("http://localhost:11434/v1", "openai", "localhost", 11434),
    ("http://vllm.internal:8000/v1", "openai", "vllm.internal", 8000),
])
def test_server_and_provider_follow_the_base_url(harness: Harness, base_url: str,
                                                 provider: str, address: str,
                                                 port: int) -> None:
    client = openai_client(OpenAIServer(), base_url=base_url)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    attrs = attrs_of(harness)
    assert (attrs[sc.GEN_AI_PROVIDER_NAME], attrs[sc.SERVER_ADDRESS],
            attrs[sc.SERVER_PORT]) == (provider, address, port)


def test_request_is_sent_unchanged_apart_from_stream_options(harness: Harness) -> None:
    server = OpenAIServer()
    client = openai_client(server)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.5)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    plain, streamed = server.requests
    assert plain == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.5}
    assert {k: v for k, v in streamed.items() if k != "stream_options"} == {
        "model": "gpt-4o", "messages": MESSAGES, "stream": True}
    # No trace of us in what the provider receives, and no API key anywhere in telemetry.
    dumped = json.dumps([dict(s.attributes or {}) for s in harness.spans()], default=str)
    assert "sk-proj" not in dumped


def test_manual_hook_around_an_instrumented_call_is_accounted_once(harness: Harness) -> None:
    """The README's quick start: llm_call() around the instrumented client, response recorded."""
    import otel_llm

    client = openai_client(OpenAIServer())
    with otel_llm.llm_call("openai", "gpt-4o") as call:
        response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        call.record_response(response)
    inner, outer = harness.spans()
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert (inner.attributes or {})[sc.OTEL_LLM_COST_USD] == pytest.approx(CHAT_COST, rel=1e-9)
    assert sc.OTEL_LLM_COST_USD not in (outer.attributes or {})  # no second cost on the trace
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(CHAT_COST, rel=1e-9)


def test_embedding_inside_a_retrieval_hook_is_its_own_call(harness: Harness) -> None:
    import otel_llm

    client = openai_client(OpenAIServer())
    with otel_llm.retrieval("kb", top_k=3) as r:
        client.embeddings.create(model="text-embedding-3-small", input="reset my password")
        r.record_documents([("d1", 0.9)])
    assert count_of(harness, sc.METRIC_OPERATION_DURATION,
                    **{sc.GEN_AI_OPERATION_NAME: "embeddings"}) == 1
    assert count_of(harness, sc.METRIC_OPERATION_DURATION,
                    **{sc.GEN_AI_OPERATION_NAME: "retrieval"}) == 1
