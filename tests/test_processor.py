from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

import otel_llm
from otel_llm import semconv as sc
from tests.conftest import Harness, make_harness
from tests.pricing_oracle import genai_prices_cost
from tests.test_hooks import count_of, sum_of

FOREIGN: dict[str, dict[str, Any]] = {
    "deprecated gen_ai.system": {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 1000,
        "gen_ai.usage.completion_tokens": 200,
    },
    "openinference": {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": 1000,
        "llm.token_count.completion": 200,
    },
}


@pytest.mark.parametrize("convention", sorted(FOREIGN))
def test_foreign_span_reaches_exporter_with_cost(harness: Harness, convention: str) -> None:
    tracer = harness.tracer_provider.get_tracer("some.other.instrumentation")
    with tracer.start_as_current_span("ChatOpenAI", attributes=FOREIGN[convention]):
        pass
    attrs = harness.span().attributes or {}
    expected = genai_prices_cost("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=200)
    assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
    assert attrs[sc.GEN_AI_USAGE_COST] == pytest.approx(expected, rel=1e-9)
    assert attrs[sc.OTEL_LLM_COST_SOURCE] == "price_table"
    for key, value in FOREIGN[convention].items():
        assert attrs[key] == value  # nothing of theirs is changed
    assert sum_of(harness, sc.METRIC_COST) == pytest.approx(expected, rel=1e-9)
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1


def test_foreign_error_span_gets_category(harness: Harness) -> None:
    tracer = harness.tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "error.type": "RateLimitError",
        })
        span.set_status(Status(StatusCode.ERROR, "Error code: 429"))
    attrs = harness.span().attributes or {}
    assert attrs["error.type"] == "RateLimitError"  # theirs, kept
    assert attrs[sc.OTEL_LLM_ERROR_CATEGORY] == "resource_error"
    assert attrs[sc.OTEL_LLM_ERROR_SEVERITY] == "high"
    assert sum_of(harness, sc.METRIC_ERRORS, **{sc.ERROR_TYPE: "rate_limit"}) == 1


def test_non_genai_and_own_spans_pass_through_untouched(harness: Harness) -> None:
    tracer = harness.tracer_provider.get_tracer("opentelemetry.instrumentation.requests")
    with tracer.start_as_current_span("GET", attributes={"http.request.method": "GET"}):
        pass
    span = harness.span()
    assert dict(span.attributes or {}) == {"http.request.method": "GET"}
    assert harness.points(sc.METRIC_OPERATION_DURATION) == []


def test_foreign_span_inside_our_hook_is_accounted_once(harness: Harness) -> None:
    sdk_tracer = harness.tracer_provider.get_tracer("anthropic")
    with otel_llm.llm_call("anthropic", "claude-3-5-haiku-latest") as call:
        with sdk_tracer.start_as_current_span("anthropic.messages.create", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
        }):
            pass
        call.record_usage(input_tokens=10, output_tokens=5)
    assert len(harness.spans()) == 2
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1
    assert count_of(harness, sc.METRIC_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 1


def test_our_hook_inside_foreign_span_is_accounted_once(harness: Harness) -> None:
    other = harness.tracer_provider.get_tracer("opentelemetry.instrumentation.openai")
    with other.start_as_current_span("openai.chat", attributes={
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "llm.request.type": "chat",
        "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5,
    }), otel_llm.llm_call("openai", "gpt-4o") as call:
        call.record_usage(input_tokens=10, output_tokens=5)
    assert len(harness.spans()) == 2
    assert count_of(harness, sc.METRIC_OPERATION_DURATION) == 1


def test_metrics_recorded_for_unsampled_calls_once() -> None:
    h = make_harness(sampler=TraceIdRatioBased(0))
    try:
        for _ in range(3):
            with otel_llm.llm_call("openai", "gpt-4o") as call:
                call.record_usage(input_tokens=100, output_tokens=10)
        assert h.spans() == ()
        assert count_of(h, sc.METRIC_OPERATION_DURATION) == 3
        assert count_of(h, sc.METRIC_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 3
        one = genai_prices_cost("gpt-4o", "openai", input_tokens=100, output_tokens=10)
        assert sum_of(h, sc.METRIC_COST) == pytest.approx(3 * one, rel=1e-9)
    finally:
        h.telemetry.shutdown()


class Exploding:
    """An observer whose failure must not reach the user's code."""

    def observe(self, record: object) -> None:
        raise RuntimeError("observer bug")


def test_processor_and_observers_never_raise(harness: Harness, caplog: Any) -> None:
    harness.telemetry.accountant.add_observer(Exploding())
    tracer = harness.tracer_provider.get_tracer("x")
    for _ in range(2):
        with tracer.start_as_current_span("chat", attributes=FOREIGN["openinference"]):
            pass
        with otel_llm.llm_call("openai", "gpt-4o") as call:
            call.record_usage(input_tokens=1, output_tokens=1)
    assert len(harness.spans()) == 4
    assert sum_of(harness, sc.METRIC_INTERNAL_ERRORS) == 4
    assert sum("observer bug" in r.getMessage() for r in caplog.records) == 1


def test_application_error_category_and_severity_survive_the_processor(harness: Harness) -> None:
    tracer = harness.tracer_provider.get_tracer("another.service.lib")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "error.type": "_OTHER",
            "otel_llm.error.category": "business_logic", "otel_llm.error.severity": "medium",
        })
        span.set_status(Status(StatusCode.ERROR))
    labels = {sc.OTEL_LLM_ERROR_CATEGORY: "business_logic", sc.OTEL_LLM_ERROR_SEVERITY: "medium"}
    assert sum_of(harness, sc.METRIC_ERRORS, **labels) == 1


def test_foreign_call_of_another_operation_inside_our_hook_is_accounted(harness: Harness) -> None:
    other = harness.tracer_provider.get_tracer("openinference.instrumentation.openai")
    with otel_llm.retrieval("kb", top_k=3), other.start_as_current_span("Embeddings", attributes={
        "openinference.span.kind": "EMBEDDING", "llm.provider": "openai",
        "embedding.model_name": "text-embedding-3-small", "llm.token_count.prompt": 12,
    }):
        pass
    embeddings = {sc.GEN_AI_OPERATION_NAME: "embeddings"}
    assert count_of(harness, sc.METRIC_OPERATION_DURATION, **embeddings) == 1
