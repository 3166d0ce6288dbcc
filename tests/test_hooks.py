from __future__ import annotations

import asyncio
import logging
import math

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import otel_llm
from otel_llm import semconv as sc
from tests.conftest import Harness
from tests.pricing_oracle import genai_prices_cost


def sum_of(h: Harness, metric: str, **attrs: str) -> float:
    total = 0.0
    for point in h.points(metric):
        if all(point.attributes.get(k) == v for k, v in attrs.items()):
            total += point.sum if hasattr(point, "sum") else point.value
    return total


def count_of(h: Harness, metric: str, **attrs: str) -> int:
    return sum(
        p.count for p in h.points(metric) if all(p.attributes.get(k) == v for k, v in attrs.items())
    )


def test_llm_call_sets_semconv_attributes_and_cost(harness: Harness) -> None:
    with otel_llm.llm_call("openai", "gpt-4o", temperature=0.2, max_tokens=256) as call:
        call.record_usage(input_tokens=1200, output_tokens=300, cached_input_tokens=1000)
        call.set_response(model="gpt-4o-2024-08-06", finish_reasons=["stop"], response_id="r1")

    span = harness.span()
    attrs = span.attributes or {}
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    expected = genai_prices_cost(
        "gpt-4o-2024-08-06", "openai", input_tokens=1200, output_tokens=300, cache_read_tokens=1000
    )
    assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
    assert attrs[sc.GEN_AI_USAGE_COST] == attrs[sc.OTEL_LLM_COST_USD]
    assert attrs[sc.OTEL_LLM_COST_SOURCE] == "price_table"
    # Cached tokens at the cache rate: cheaper than the same tokens uncached.
    uncached = genai_prices_cost("gpt-4o", "openai", input_tokens=1200, output_tokens=300)
    assert attrs[sc.OTEL_LLM_COST_USD] < uncached
    assert sc.ERROR_TYPE not in attrs

    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(expected, rel=1e-9)
    assert count_of(harness, sc.METRIC_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 1
    assert sum_of(harness, sc.METRIC_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 300
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1


def test_exception_is_reraised_untouched_and_classified(harness: Harness) -> None:
    boom = TimeoutError("upstream took too long")
    with pytest.raises(TimeoutError) as info, otel_llm.llm_call("openai", "gpt-4o-mini"):
        raise boom
    assert info.value is boom

    span = harness.span()
    attrs = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR
    assert attrs[sc.ERROR_TYPE] == "timeout"
    assert attrs[sc.OTEL_LLM_ERROR_CATEGORY] == "external_service"
    assert attrs[sc.OTEL_LLM_ERROR_SEVERITY] == "high"
    assert [e.name for e in span.events] == ["exception"]
    assert count_of(harness, sc.METRIC_OPERATION_DURATION, **{sc.ERROR_TYPE: "timeout"}) == 1
    category = {sc.OTEL_LLM_ERROR_CATEGORY: "external_service"}
    assert sum_of(harness, sc.METRIC_ERRORS, **category) == 1


def test_exception_message_is_redacted_on_the_span(harness: Harness) -> None:
    with pytest.raises(ValueError), otel_llm.llm_call("openai", "gpt-4o"):
        raise ValueError("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwx")
    event = harness.span().events[0]
    assert "sk-proj-" not in str(event.attributes)


def test_async_hook() -> None:
    # Uses its own harness: pytest-asyncio is not a dependency, so drive the loop here.
    from tests.conftest import make_harness

    h = make_harness()
    try:
        async def main() -> None:
            async with otel_llm.embedding("openai", "text-embedding-3-small") as call:
                await asyncio.sleep(0)
                call.record_usage(input_tokens=50)

        asyncio.run(main())
        span = h.span()
        assert span.name == "embeddings text-embedding-3-small"
        expected = genai_prices_cost(
            "text-embedding-3-small", "openai", input_tokens=50, output_tokens=0
        )
        assert (span.attributes or {})[sc.OTEL_LLM_COST_USD] == pytest.approx(expected)
    finally:
        h.telemetry.shutdown()


def test_unknown_model_is_never_priced_zero(harness: Harness) -> None:
    with otel_llm.llm_call("acme", "acme-llm-9000") as call:
        call.record_usage(input_tokens=10, output_tokens=10)
    attrs = harness.span().attributes or {}
    assert sc.OTEL_LLM_COST_USD not in attrs
    assert sc.GEN_AI_USAGE_COST not in attrs
    assert attrs[sc.OTEL_LLM_COST_SOURCE] == "unknown_model"
    assert sum_of(harness, sc.METRIC_UNPRICED_CALLS) == 1
    assert sum_of(harness, sc.METRIC_COST) == 0


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -1, "output_tokens": 5},
        {"input_tokens": "12", "output_tokens": 5},
        {"input_tokens": math.nan, "output_tokens": 5},
        {"input_tokens": 10**13, "output_tokens": 5},
        {"input_tokens": 3.5, "output_tokens": True},
    ],
)
def test_bad_usage_never_raises_and_is_counted(
    harness: Harness, usage: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_llm"):
        for _ in range(3):
            with otel_llm.llm_call("openai", "gpt-4o") as call:
                call.record_usage(**usage)  # type: ignore[arg-type]
    assert len(harness.spans()) == 3
    assert sum_of(harness, sc.METRIC_INVALID_INPUT) >= 3
    warnings = [r for r in caplog.records if "invalid" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # once per field, not once per call


@pytest.mark.parametrize("provider,model", [("", "gpt-4o"), ("openai", ""), (None, None)])
def test_bad_names_never_raise(harness: Harness, provider: object, model: object) -> None:
    with otel_llm.llm_call(provider, model) as call:  # type: ignore[arg-type]
        call.record_usage(input_tokens=1, output_tokens=1)
    assert len(harness.spans()) == 1
    assert sum_of(harness, sc.METRIC_INVALID_INPUT) >= 1


def test_retrieval_rerank_and_pipeline(harness: Harness) -> None:
    with otel_llm.rag_pipeline("support-bot"):
        with otel_llm.retrieval("kb-docs", top_k=3, query="reset my password") as r:
            r.record_documents([("d1", 0.91), ("d2", 0.5), ("d3", None)])
        with otel_llm.rerank("cohere", "rerank-v3.5", top_n=2):
            pass
    spans = {s.name: s for s in harness.spans()}
    pipeline = spans["invoke_workflow support-bot"]
    assert pipeline.kind is SpanKind.INTERNAL
    assert (pipeline.attributes or {})[sc.GEN_AI_WORKFLOW_NAME] == "support-bot"
    retrieval = spans["retrieval kb-docs"]
    attrs = retrieval.attributes or {}
    assert retrieval.parent is not None
    assert retrieval.parent.span_id == pipeline.context.span_id
    assert attrs[sc.GEN_AI_DATA_SOURCE_ID] == "kb-docs"
    assert attrs[sc.GEN_AI_RETRIEVAL_TOP_K] == 3
    assert attrs[sc.OTEL_LLM_RETRIEVAL_DOCUMENTS_COUNT] == 3
    assert attrs[sc.OTEL_LLM_RETRIEVAL_TOP_SCORE] == 0.91
    assert sc.GEN_AI_RETRIEVAL_QUERY_TEXT not in attrs  # content is off by default
    assert sc.OTEL_LLM_COST_SOURCE not in attrs  # retrieval is not priced
    assert "rerank rerank-v3.5" in spans
    assert sum_of(harness, sc.METRIC_RETRIEVAL_DOCUMENTS) == 3


def test_query_is_captured_redacted_when_content_capture_is_on() -> None:
    from tests.conftest import make_harness

    h = make_harness(capture_content=True)
    try:
        with otel_llm.retrieval("kb", query="mail bob@example.com key sk-abcdefghijklmnopqrstu"):
            pass
        text = (h.span().attributes or {})[sc.GEN_AI_RETRIEVAL_QUERY_TEXT]
        assert "bob@example.com" not in str(text)
        assert "sk-abcdefghijklmnopqrstu" not in str(text)
        assert "mail" in str(text)
    finally:
        h.telemetry.shutdown()


def test_trace_llm_reads_openai_and_anthropic_shapes(harness: Harness) -> None:
    @otel_llm.trace_llm("openai")
    def ask_openai(model: str) -> dict[str, object]:
        return {
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 64},
            },
        }

    @otel_llm.trace_llm("anthropic", model="claude-3-5-haiku-latest")
    async def ask_anthropic() -> dict[str, object]:
        return {
            "id": "msg_1",
            "model": "claude-3-5-haiku-20241022",
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 200,
                "cache_creation_input_tokens": 30,
            },
        }

    ask_openai(model="gpt-4o-mini")
    asyncio.run(ask_anthropic())
    first, second = harness.spans()
    a = first.attributes or {}
    assert first.name == "chat gpt-4o-mini"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 100
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 64
    assert a[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    b = second.attributes or {}
    # Anthropic reports cached tokens beside input tokens: the spec's input includes them.
    assert b[sc.GEN_AI_USAGE_INPUT_TOKENS] == 240
    assert b[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    assert b[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 30
    assert b[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    expected = genai_prices_cost(
        "claude-3-5-haiku-20241022", "anthropic", input_tokens=240, output_tokens=5,
        cache_read_tokens=200, cache_write_tokens=30,
    )
    assert b[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)


def test_time_to_first_chunk(harness: Harness) -> None:
    with otel_llm.llm_call("openai", "gpt-4o", stream=True) as call:
        call.record_first_chunk()
        call.record_first_chunk()  # only the first counts
        call.record_usage(input_tokens=5, output_tokens=5)
    attrs = harness.span().attributes or {}
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert count_of(harness, sc.METRIC_TIME_TO_FIRST_CHUNK) == 1


def test_record_response_method_reads_a_response_object(harness: Harness) -> None:
    class Usage:
        prompt_tokens = 40
        completion_tokens = 2
        prompt_tokens_details = None

    class Response:
        id = "chatcmpl-9"
        model = "gpt-4o-mini"
        choices = ()
        usage = Usage()

    with otel_llm.llm_call("openai", "gpt-4o-mini") as call:
        call.record_response(Response())
    attrs = harness.span().attributes or {}
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 40
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-9"
