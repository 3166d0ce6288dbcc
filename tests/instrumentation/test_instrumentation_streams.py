"""A stream's span ends exactly once, however the caller leaves the stream."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from otel_llm import semconv as sc
from tests.conftest import Harness
from tests.instrumentation.llm_fakes import (
    OPENAI_HTTP,
    OpenAIServer,
    async_openai_client,
    chat_chunks,
    openai_client,
    sse,
    stream_response,
)
from tests.test_hooks import count_of

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MESSAGES = [{"role": "user", "content": "Say hello"}]


def ended_once(harness: Harness) -> dict[str, Any]:
    """The one span, ended; metrics recorded once."""
    span = harness.span()
    assert span.end_time is not None
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    return dict(span.attributes or {})


def create(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)


def test_exhausted(harness: Harness) -> None:
    stream = create(openai_client(OpenAIServer()))
    assert harness.spans() == ()  # still open while the caller reads
    for _ in stream:
        pass
    attrs = ended_once(harness)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    list(stream)  # iterating again: nothing new, no second end
    stream.close()
    assert len(harness.spans()) == 1


def test_looping_over_the_call_itself(harness: Harness) -> None:
    """The commonest form keeps no reference to the stream: the loop alone must keep ours alive
    (its collection would end the span before the first chunk)."""
    client = openai_client(OpenAIServer())
    assert sum(1 for _ in create(client)) == len(chat_chunks(include_usage=False))
    attrs = ended_once(harness)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs

    async def main() -> int:
        client = async_openai_client(OpenAIServer())
        return len([c async for c in await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True)])

    harness.exporter.clear()
    assert asyncio.run(main()) == len(chat_chunks(include_usage=False))
    assert (harness.span().attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200


def test_early_break_in_with_block(harness: Harness) -> None:
    with create(openai_client(OpenAIServer())) as stream:
        for _ in stream:
            break
        assert harness.spans() == ()
    attrs = ended_once(harness)
    assert sc.ERROR_TYPE not in attrs
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs
    assert harness.span().status.status_code is StatusCode.UNSET


def test_iterating_on_after_a_break_sees_every_chunk_once(harness: Harness) -> None:
    """As on the SDK's stream: loops and next() share one position; the span ends at the end."""
    expected = [c.model_dump() for c in create(openai_client(OpenAIServer()))]
    stream = create(openai_client(OpenAIServer()))
    seen = [next(stream)]
    for chunk in stream:
        seen.append(chunk)
        break
    assert len(harness.spans()) == 1  # the reference's: a break leaves the stream open
    seen.extend(stream)
    assert [c.model_dump() for c in seen] == expected
    spans = harness.spans()
    assert len(spans) == 2 and spans[1].end_time is not None
    assert (spans[1].attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 2
    with pytest.raises(StopIteration):
        next(stream)
    assert len(harness.spans()) == 2


def test_close(harness: Harness) -> None:
    stream = create(openai_client(OpenAIServer()))
    next(stream)
    stream.close()
    stream.close()
    ended_once(harness)


def test_break_then_dropped_ends_when_collected(harness: Harness) -> None:
    stream = create(openai_client(OpenAIServer()))
    for _ in stream:
        break
    ref = weakref.ref(stream)
    del stream
    gc.collect()
    assert ref() is None
    ended_once(harness)


def test_never_consumed_and_dropped(harness: Harness) -> None:
    stream = create(openai_client(OpenAIServer()))
    ref = weakref.ref(stream)
    del stream
    gc.collect()
    assert ref() is None
    attrs = ended_once(harness)
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs


def failing_body() -> Iterator[bytes]:
    body = sse(chat_chunks(include_usage=True))
    yield body[:400]
    raise OPENAI_HTTP.ReadError("connection reset mid-stream")


def test_mid_stream_error_ends_span_with_the_error(harness: Harness) -> None:
    server = OpenAIServer(override=lambda request: stream_response(failing_body()))
    stream = create(openai_client(server))
    received = []
    # openai 3.x wraps the transport error in APIConnectionError; 1.x lets it through.
    with pytest.raises((openai.APIConnectionError, OPENAI_HTTP.ReadError)):
        for chunk in stream:
            received.append(chunk)
    assert received  # it failed midway, not at the start
    attrs = ended_once(harness)
    assert attrs[sc.ERROR_TYPE] == "connection"
    assert attrs[sc.OTEL_LLM_ERROR_CATEGORY] == "external_service"
    assert harness.span().status.status_code is StatusCode.ERROR
    stream.close()
    assert len(harness.spans()) == 1


def test_error_event_in_stream(harness: Harness) -> None:
    body = sse([chat_chunks(False)[0], {"error": {"message": "The server is overloaded",
                                                 "type": "server_error"}}])
    stream = create(openai_client(OpenAIServer(override=lambda r: stream_response(body))))
    with pytest.raises(openai.APIError):
        list(stream)
    attrs = ended_once(harness)
    assert attrs[sc.ERROR_TYPE] != ""
    assert harness.span().status.status_code is StatusCode.ERROR


def test_async_early_break_close_and_gc(harness: Harness) -> None:
    async def main() -> None:
        client = async_openai_client(OpenAIServer())
        first = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                     stream=True)
        async for _ in first:
            break
        await first.close()
        second = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                      stream=True)
        async with second:
            async for _ in second:
                break
        third = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                     stream=True)
        ref = weakref.ref(third)
        del third
        gc.collect()
        assert ref() is None

    asyncio.run(main())
    spans = harness.spans()
    assert len(spans) == 3
    assert all(s.end_time is not None for s in spans)
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 3


def test_async_mid_stream_error(harness: Harness) -> None:
    async def chunks() -> Any:
        for chunk in failing_body():
            yield chunk

    async def main() -> None:
        server = OpenAIServer(override=lambda request: stream_response(chunks()))
        stream = await async_openai_client(server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True)
        with pytest.raises((openai.APIConnectionError, OPENAI_HTTP.ReadError)):
            async for _ in stream:
                pass

    asyncio.run(main())
    assert ended_once(harness)[sc.ERROR_TYPE] == "connection"


def test_wrapper_is_transparent(harness: Harness) -> None:
    stream = create(openai_client(OpenAIServer()))
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # SDK attributes reach the real stream
    with stream as entered:
        assert entered is stream
        assert next(iter(stream)).choices[0].delta.role == "assistant"
    ended_once(harness)


def test_a_failure_of_ours_never_breaks_the_users_stream(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm.instrumentation import openai as ours

    def broken(self: Any, chunk: Any) -> bool:
        raise RuntimeError("bug in our mapping")

    monkeypatch.setattr(ours._ChoicesStream, "observe", broken)
    chunks = list(create(openai_client(OpenAIServer())))
    assert len(chunks) == 23  # every chunk delivered (ours included: we stopped observing)
    ended_once(harness)
    internal = [p for p in harness.points(sc.METRIC_INTERNAL_ERRORS)
                if p.attributes.get("where") == "stream.observe"]
    assert sum(p.value for p in internal) == 1


def test_a_failure_of_ours_before_the_call_never_breaks_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm.instrumentation import _calls

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in our set-up")

    monkeypatch.setattr(_calls, "begin", broken)
    response = openai_client(OpenAIServer()).chat.completions.create(model="gpt-4o",
                                                                      messages=MESSAGES)
    assert response.choices[0].message.content == "Hello!"
    assert harness.spans() == ()
