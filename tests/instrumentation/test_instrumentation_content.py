"""Content capture: off by default; when on, the spec's JSON, redacted, valid under the cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from tests.conftest import Harness, make_harness
from tests.instrumentation.llm_fakes import (
    ANTHROPIC_KEY,
    API_KEY,
    CLAUDE,
    STREAM_TEXT,
    AnthropicServer,
    OpenAIServer,
    anthropic_client,
    openai_client,
)

SECRET_PROMPT = ("My key is sk-proj-abcdefghijklmnopqrstuvwx1234, auth Bearer "
                 "eyJhbGciOiJIUzI1NiJ9abcdefgh, password=hunter2 and mail me at "
                 "jane.doe@example.com")
LEAKS = ("sk-proj-abcdefghij", "eyJhbGciOiJIUzI1NiJ9", "hunter2", "jane.doe@example.com",
         API_KEY, ANTHROPIC_KEY)


@pytest.fixture
def capturing(harness: Harness) -> Iterator[Harness]:
    openai_instrumentor = OpenAIInstrumentor()
    anthropic_instrumentor = AnthropicInstrumentor()
    for instrumentor in (openai_instrumentor, anthropic_instrumentor):
        instrumentor.instrument(tracer_provider=harness.tracer_provider,
                                meter_provider=harness.meter_provider, capture_content=True)
    yield harness
    openai_instrumentor.uninstrument()
    anthropic_instrumentor.uninstrument()


def everything(harness: Harness) -> str:
    """All attributes and event attributes of all spans, as one string."""
    return json.dumps([[dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]]
                       for s in harness.spans()], default=str)


def content_of(harness: Harness, key: str) -> Any:
    return json.loads((harness.span().attributes or {})[key])


def test_off_by_default(harness: Harness) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=harness.tracer_provider)
    try:
        openai_client(OpenAIServer()).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}])
    finally:
        instrumentor.uninstrument()
    attrs = harness.span().attributes or {}
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs and sc.GEN_AI_OUTPUT_MESSAGES not in attrs
    assert "hunter2" not in everything(harness)


def test_openai_chat_content_is_spec_json_and_redacted(capturing: Harness) -> None:
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": SECRET_PROMPT}]
    openai_client(OpenAIServer()).chat.completions.create(model="gpt-4o", messages=messages)
    dumped = everything(capturing)
    for leak in LEAKS:
        assert leak not in dumped
    assert content_of(capturing, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content":
            "My key is [REDACTED], auth Bearer [REDACTED], password=[REDACTED] and mail me at "
            "[EMAIL]"}]},
    ]
    assert content_of(capturing, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}],
         "finish_reason": "stop"}]


def test_openai_tool_calls_in_content(capturing: Harness) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    list(openai_client(OpenAIServer()).chat.completions.create(
        model="gpt-4o", messages=messages, tools=tools, stream=True))
    sent = content_of(capturing, sc.GEN_AI_INPUT_MESSAGES)
    assert sent[1]["parts"] == [{"type": "tool_call", "id": "call_0", "name": "get_weather",
                                 "arguments": '{"city": "Rome"}'}]
    assert sent[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_0",
                                                  "response": "sunny"}]}
    [out] = content_of(capturing, sc.GEN_AI_OUTPUT_MESSAGES)  # accumulated from the deltas
    assert out["finish_reason"] == "tool_calls"
    assert out["parts"][-1] == {"type": "tool_call", "id": "call_1", "name": "get_weather",
                                "arguments": '{"city": "Paris"}'}


def test_openai_stream_output_is_accumulated(capturing: Harness) -> None:
    list(openai_client(OpenAIServer()).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True))
    [out] = content_of(capturing, sc.GEN_AI_OUTPUT_MESSAGES)
    assert out["parts"] == [{"type": "text", "content": "".join(STREAM_TEXT)}]


def test_responses_instructions_are_system_instructions(capturing: Harness) -> None:
    openai_client(OpenAIServer()).responses.create(
        model="gpt-4o", instructions="Be brief. api_key=abc123secret", input=SECRET_PROMPT)
    assert content_of(capturing, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [
        {"type": "text", "content": "Be brief. api_key=[REDACTED]"}]
    assert content_of(capturing, sc.GEN_AI_INPUT_MESSAGES)[0]["role"] == "user"
    assert content_of(capturing, sc.GEN_AI_OUTPUT_MESSAGES)[0]["finish_reason"] == "stop"
    for leak in LEAKS:
        assert leak not in everything(capturing)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_content(capturing: Harness, stream: bool) -> None:
    result = anthropic_client(AnthropicServer()).messages.create(
        model=CLAUDE, max_tokens=1024, system="You are terse.", stream=stream,
        messages=[{"role": "user", "content": [{"type": "text", "text": SECRET_PROMPT}]}])
    if stream:
        list(result)
    assert content_of(capturing, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [
        {"type": "text", "content": "You are terse."}]
    assert content_of(capturing, sc.GEN_AI_INPUT_MESSAGES)[0]["role"] == "user"
    text = "".join(STREAM_TEXT) if stream else "Hello!"
    assert content_of(capturing, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}],
         "finish_reason": "end_turn"}]
    for leak in LEAKS:
        assert leak not in everything(capturing)


def test_long_content_stays_valid_json_under_the_cap(capturing: Harness) -> None:
    limit = _runtime.current().content_max_length
    messages = [{"role": "user", "content": f"turn {i} " + "x" * 3000} for i in range(10)]
    openai_client(OpenAIServer()).chat.completions.create(model="gpt-4o", messages=messages)
    raw = (capturing.span().attributes or {})[sc.GEN_AI_INPUT_MESSAGES]
    assert len(raw) <= limit
    sent = json.loads(raw)
    assert sent[-1]["parts"][0]["content"].startswith("turn 9")


def test_configure_capture_content_reaches_instrumentors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    harness = make_harness(capture_content=True)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()  # no providers: the runtime configure() installed
    try:
        openai_client(OpenAIServer()).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "password=hunter2"}])
        assert "password=[REDACTED]" in content_of(harness, sc.GEN_AI_INPUT_MESSAGES)[0][
            "parts"][0]["content"]
    finally:
        instrumentor.uninstrument()
        harness.telemetry.shutdown()
        _runtime.install(None)
