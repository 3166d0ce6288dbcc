"""normalize(): one LLMCall from any GenAI convention's span attributes; None for other spans."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm.core.normalize import INVALID_TOKEN_COUNT_LIMIT, is_genai, normalize
from otel_llm.core.types import LLMCall


def _call(attributes: Mapping[str, object], **kwargs: Any) -> LLMCall:
    call = normalize(attributes, **kwargs)
    assert call is not None
    return call


# --- one realistic span per convention ------------------------------------------------------


def test_ours_v1_41_with_cache_taken_as_is() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.cache_read.input_tokens": 4000,
            "gen_ai.usage.cache_creation.input_tokens": 500,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.reasoning.output_tokens": 120,
            "gen_ai.response.time_to_first_chunk": 0.42,
            "server.address": "api.anthropic.com",
            "error.type": "rate_limit",
            "otel_llm.cost.usd": 0.0123,
            "otel_llm.cost.source": "price_table",
            "otel_llm.error.category": "resource_error",
            "otel_llm.project.id": "rag-api",
        },
        span_name="chat claude-sonnet-4-5",
        duration_s=1.5,
    )
    assert call == LLMCall(
        operation="chat",
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        input_tokens=5000,  # the spec already includes the 4500 cached: not summed
        output_tokens=300,
        cache_read_tokens=4000,
        cache_creation_tokens=500,
        reasoning_tokens=120,
        duration_s=1.5,
        time_to_first_chunk_s=0.42,
        is_error=True,
        error_type="rate_limit",
        project="rag-api",
        server_address="api.anthropic.com",
        cost_usd=0.0123,
        cost_source="price_table",
        error_category="resource_error",
    )
    assert call.model == "claude-sonnet-4-5-20250929"


def test_ours_retrieval_span() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "docs-index",
            "otel_llm.retrieval.documents.count": 0,
        },
        span_name="retrieval docs-index",
    )
    assert (call.operation, call.data_source, call.retrieval_documents) == (
        "retrieval",
        "docs-index",
        0,
    )


def test_deprecated_semconv_without_operation_uses_span_name() -> None:
    call = _call(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.response.model": "gpt-4-0613",
            "gen_ai.usage.prompt_tokens": 52,
            "gen_ai.usage.completion_tokens": 17,
        },
        span_name="chat gpt-4",
    )
    assert (call.operation, call.provider, call.input_tokens, call.output_tokens) == (
        "chat",
        "openai",
        52,
        17,
    )


@pytest.mark.parametrize(
    ("provider_key", "provider_value", "expected"),
    [
        ("gen_ai.system", "openai", "openai"),
        ("gen_ai.provider.name", "openai", "openai"),
        ("gen_ai.system", "az.ai.openai", "azure.ai.openai"),
    ],
)
def test_official_openai_v2(provider_key: str, provider_value: str, expected: str) -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            provider_key: provider_value,
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-A1",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": 24,
            "gen_ai.usage.output_tokens": 9,
            "gen_ai.openai.response.service_tier": "default",
            "server.address": "api.openai.com",
            "server.port": 443,
        },
        span_name="chat gpt-4o-mini",
    )
    assert (call.provider, call.model, call.input_tokens, call.output_tokens) == (
        expected,
        "gpt-4o-mini-2024-07-18",
        24,
        9,
    )


def test_official_openai_v2_embeddings() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 8,
        },
        span_name="embeddings text-embedding-3-small",
    )
    assert (call.operation, call.input_tokens, call.output_tokens) == ("embeddings", 8, None)


def test_openinference_llm_openai() -> None:
    call = _call(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.token_count.prompt": 1523,
            "llm.token_count.completion": 41,
            "llm.token_count.total": 1564,
            "llm.token_count.prompt_details.cache_read": 1024,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.invocation_parameters": '{"model": "gpt-4o"}',
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi",
        },
        span_name="ChatCompletion",
    )
    assert (call.operation, call.provider, call.request_model) == (
        "chat",
        "openai",
        "gpt-4o-2024-08-06",
    )
    assert (call.input_tokens, call.output_tokens, call.cache_read_tokens) == (1523, 41, 1024)


def test_openinference_anthropic_prompt_already_includes_cache() -> None:
    # openinference-instrumentation-anthropic sums input + cache read + cache creation itself.
    call = _call(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-7-sonnet-20250219",
            "llm.provider": "anthropic",
            "llm.system": "anthropic",
            "llm.token_count.prompt": 1748,
            "llm.token_count.completion": 250,
            "llm.token_count.prompt_details.cache_read": 1733,
        },
        span_name="Messages",
    )
    assert (call.provider, call.input_tokens, call.cache_read_tokens) == ("anthropic", 1748, 1733)


def test_openinference_completions_embedding_retriever_reranker() -> None:
    completion = _call(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-3.5-turbo-instruct",
            "llm.prompts": ("Say hi",),
            "llm.token_count.prompt": 3,
            "llm.token_count.completion": 2,
        },
        span_name="AsyncCompletions",
    )
    assert completion.operation == "text_completion"
    embedding = _call(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "llm.token_count.prompt": 8,
            "llm.token_count.total": 8,
        },
        span_name="CreateEmbeddingResponse",
    )
    assert (embedding.operation, embedding.request_model, embedding.input_tokens) == (
        "embeddings",
        "text-embedding-3-small",
        8,
    )
    retriever = _call(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "what is otel?",
            "retrieval.documents.0.document.id": "a",
            "retrieval.documents.0.document.score": 0.9,
            "retrieval.documents.1.document.id": "b",
            "retrieval.documents.2.document.id": "c",
        },
        span_name="VectorIndexRetriever.retrieve",
    )
    assert (retriever.operation, retriever.retrieval_documents) == ("retrieval", 3)
    reranker = _call(
        {
            "openinference.span.kind": "RERANKER",
            "reranker.model_name": "rerank-english-v3.0",
            "reranker.output_documents.0.document.id": "a",
        },
        span_name="CohereRerank.postprocess_nodes",
    )
    assert (reranker.operation, reranker.retrieval_documents) == ("rerank", 1)
    assert reranker.request_model == "rerank-english-v3.0"


@pytest.mark.parametrize("kind", ["CHAIN", "AGENT", "GUARDRAIL"])
def test_openinference_aggregates_are_not_calls(kind: str) -> None:
    attributes = {
        "openinference.span.kind": kind,
        "llm.token_count.prompt": 100,
        "llm.token_count.completion": 10,
        "llm.model_name": "gpt-4o",
    }
    # Even a span name that reads like a call: the kind is explicit.
    assert normalize(attributes, span_name="BaseChatEngine.chat") is None


def test_openllmetry_openai() -> None:
    call = _call(
        {
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.openai.api_base": "https://api.openai.com/v1/",
            "llm.is_streaming": False,
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 50,
            "llm.usage.total_tokens": 1250,
            "gen_ai.usage.cache_read_input_tokens": 1024,
        },
        span_name="openai.chat",
    )
    assert (call.operation, call.provider, call.input_tokens, call.cache_read_tokens) == (
        "chat",
        "openai",
        1200,
        1024,
    )


@pytest.mark.parametrize(
    ("read_key", "creation_key"),
    [
        # older opentelemetry-instrumentation-anthropic
        ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
        # newer: the semconv names
        ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    ],
)
def test_openllmetry_anthropic_is_not_summed_twice(read_key: str, creation_key: str) -> None:
    # OpenLLMetry writes input = Anthropic input + cache read + cache creation itself.
    call = _call(
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "completion",  # it says so for Messages too
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.response.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.input_tokens": 13 + 1733 + 20,
            "gen_ai.usage.output_tokens": 250,
            "llm.usage.total_tokens": 13 + 1733 + 20 + 250,
            read_key: 1733,
            creation_key: 20,
        },
        span_name="anthropic.chat",
    )
    assert (call.operation, call.provider, call.input_tokens) == ("chat", "anthropic", 1766)
    assert (call.cache_read_tokens, call.cache_creation_tokens) == (1733, 20)


def test_openllmetry_workflow_and_rerank() -> None:
    workflow = {"traceloop.span.kind": "workflow", "traceloop.entity.name": "rag"}
    assert normalize(workflow, span_name="rag.workflow") is None
    rerank = _call(
        {
            "gen_ai.system": "Cohere",
            "llm.request.type": "rerank",
            "gen_ai.request.model": "rerank-english-v3.0",
        },
        span_name="cohere.rerank",
    )
    assert (rerank.operation, rerank.provider) == ("rerank", "cohere")


def test_openlit_openai_keeps_its_cost_without_a_source() -> None:
    call = _call(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "server.address": "api.openai.com",
            "server.port": 443,
            "gen_ai.request.is_stream": True,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.reasoning_tokens": 5,
            "gen_ai.client.token.usage": 120,
            "gen_ai.usage.cost": 0.00045,
            "gen_ai.server.ttft": 0.35,
            "gen_ai.server.tbt": 0.01,
            "gen_ai.sdk.version": "1.34.0",
        },
        span_name="chat gpt-4o",
    )
    assert (call.cost_usd, call.cost_source) == (0.00045, None)
    assert (call.time_to_first_chunk_s, call.reasoning_tokens) == (0.35, 5)
    assert (call.input_tokens, call.output_tokens) == (100, 20)


def test_openlit_anthropic_raw_input_is_summed() -> None:
    # OpenLIT records Anthropic's input_tokens as the API reports them: without the cache.
    call = _call(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-latest",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 200,
            "gen_ai.usage.cost": 0.02,
        },
    )
    assert call.input_tokens == 6200


def test_openlit_marker_on_the_resource() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-3-5-haiku-latest",
        "gen_ai.usage.input_tokens": 5000,
        "gen_ai.usage.cache_read.input_tokens": 1000,
    }
    assert _call(attributes).input_tokens == 5000
    assert _call(attributes, resource={"telemetry.sdk.name": "openlit"}).input_tokens == 6000


def test_anthropic_sdk_self_span() -> None:
    # What anthropic 2.x's own tracing writes on anthropic.messages.create: its input_tokens
    # already adds cache_read_input_tokens and cache_creation_input_tokens (set_usage_sums).
    call = _call(
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.response.id": "msg_01",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.input_tokens": 12 + 2000 + 49,
            "gen_ai.usage.cache_read.input_tokens": 2000,
            "gen_ai.usage.cache_write.input_tokens": 49,
            "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 49,
            "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 0,
            "gen_ai.usage.output_tokens": 200,
            "anthropic.message.stop_reason": "end_turn",
            "anthropic.request.id": "req_01",
            "server.address": "api.anthropic.com",
            "http.response.status_code": 200,
        },
        span_name="anthropic.messages.create",
    )
    assert (call.input_tokens, call.cache_read_tokens, call.cache_creation_tokens) == (
        2061,
        2000,
        49,
    )
    assert (call.operation, call.provider, call.output_tokens) == ("chat", "anthropic", 200)


def test_anthropic_sdk_spans_that_are_not_calls() -> None:
    count_tokens = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "anthropic.message.count_tokens.input_tokens": 2000,
    }
    assert normalize(count_tokens, span_name="anthropic.messages.count_tokens") is None
    tool_runner = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
    }
    assert normalize(tool_runner, span_name="anthropic.messages.tool_runner") is None


def test_anthropic_sdk_on_bedrock_failed_call() -> None:
    call = _call(
        {
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "error.type": "overloaded",
        },
        span_name="anthropic.messages.create",
        status_is_error=True,
    )
    assert (call.provider, call.is_error, call.error_type, call.input_tokens) == (
        "aws.bedrock",
        True,
        "overloaded",
        None,
    )


def test_reads_an_ended_sdk_span() -> None:
    # What LLMSpanProcessor hands in: the read-only attributes and resource of a ReadableSpan.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"otel_llm.project.id": "rag-api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 1024,
            }
        )
    with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", "/health")
    llm_span, http_span = exporter.get_finished_spans()
    provider.shutdown()
    assert llm_span.attributes is not None and http_span.attributes is not None
    call = _call(
        llm_span.attributes, span_name=llm_span.name, resource=llm_span.resource.attributes
    )
    assert (call.input_tokens, call.cache_read_tokens, call.project) == (1200, 1024, "rag-api")
    assert not is_genai(http_span.attributes)
    assert normalize(http_span.attributes, span_name=http_span.name) is None


# --- the Anthropic summing rule ---------------------------------------------------------------


def _anthropic_style(provider: str, model: str, **extra: object) -> dict[str, object]:
    return {
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.prompt_tokens": 2000,
        "gen_ai.usage.completion_tokens": 10,
        "gen_ai.usage.cache_read_input_tokens": 1500,
        "gen_ai.usage.cache_creation_input_tokens": 100,
        **extra,
    }


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-3-5-haiku-20241022", 3600),
        ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 3600),
        ("vertex_ai", "claude-3-5-sonnet-v2@20241022", 3600),
        ("aws.bedrock", "amazon.titan-text-express-v1", 2000),
        ("openai", "gpt-4o", 2000),  # OpenAI's prompt count includes cached tokens
    ],
)
def test_foreign_cache_names_of_anthropic_usage_are_summed(
    provider: str, model: str, expected: int
) -> None:
    assert _call(_anthropic_style(provider, model)).input_tokens == expected


def test_spec_compliant_anthropic_is_not_summed() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.cache_read.input_tokens": 1500,
            "gen_ai.usage.cache_creation.input_tokens": 100,
        }
    )
    assert call.input_tokens == 2000


def test_input_below_its_cache_parts_cannot_include_them() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 1000,
        }
    )
    assert call.input_tokens == 1010


def test_reasoning_reported_apart_from_output_is_summed() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.reasoning.output_tokens": 50,
        }
    )
    assert call.output_tokens == 60


def test_sum_beyond_the_limit_is_invalid() -> None:
    half = INVALID_TOKEN_COUNT_LIMIT // 2 + 1
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": half,
            "gen_ai.usage.cache_read.input_tokens": half,
            "gen_ai.usage.cache_creation.input_tokens": half,
        }
    )
    assert call.input_tokens is None


# --- values and names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Anthropic", "anthropic"),
        ("azure", "azure.ai.openai"),
        ("az.ai.openai", "azure.ai.openai"),
        ("azure_openai", "azure.ai.openai"),
        ("AzureOpenAI", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("bedrock", "aws.bedrock"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini"),
        ("google", "gcp.gen_ai"),
        ("mistralai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("xai", "x_ai"),
        ("ibm.watson.ai", "ibm.watsonx.ai"),
        ("DeepSeek", "deepseek"),
        ("Together.AI", "together.ai"),
    ],
)
def test_provider_names(raw: str, expected: str) -> None:
    call = _call({"gen_ai.operation.name": "chat", "gen_ai.system": raw})
    assert call.provider == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        (7.0, 7),
        ("7", 7),
        (" 12 ", 12),
        ("1e3", 1000),
        (True, None),
        (7.5, None),
        (math.nan, None),
        (math.inf, None),
        (-1, None),
        (INVALID_TOKEN_COUNT_LIMIT, INVALID_TOKEN_COUNT_LIMIT),
        (INVALID_TOKEN_COUNT_LIMIT + 1, None),
        (10**400, None),
        ("9" * 5000, None),
        ([7], None),
        (b"7", None),
        (None, None),
    ],
)
def test_token_values(value: object, expected: int | None) -> None:
    call = _call({"gen_ai.operation.name": "chat", "gen_ai.usage.output_tokens": value})
    assert call.output_tokens == expected


def test_invalid_value_falls_back_to_the_next_name() -> None:
    call = _call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": "n/a",
            "gen_ai.usage.prompt_tokens": 42,
        }
    )
    assert call.input_tokens == 42


def test_duration_project_and_errors() -> None:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    call = _call(attributes, duration_s=-1.0, resource={"otel_llm.project.id": "billing"})
    assert (call.duration_s, call.project, call.is_error) == (None, "billing", False)
    assert _call(attributes, duration_s=math.nan).duration_s is None
    assert _call(attributes, status_is_error=True).is_error
    assert _call({**attributes, "error.type": ""}).is_error is False
    span_wins = {**attributes, "otel_llm.project.id": "search"}
    assert _call(span_wins, resource={"otel_llm.project.id": "billing"}).project == "search"


def test_chat_inferred_from_model_and_tokens() -> None:
    call = _call({"gen_ai.request.model": "llama3", "gen_ai.usage.input_tokens": 3})
    assert call.operation == "chat"
    assert normalize({"gen_ai.request.model": "llama3"}) is None


def test_openlit_vectordb_reads_are_retrievals_and_writes_are_not() -> None:
    base = {"gen_ai.operation.name": "vectordb", "gen_ai.system": "chroma"}
    query = _call({**base, "db.operation.name": "query", "db.response.returned_rows": 4})
    assert (query.operation, query.retrieval_documents) == ("retrieval", 4)
    assert normalize({**base, "db.operation.name": "add"}) is None


# --- not GenAI --------------------------------------------------------------------------------

NOT_GENAI = [
    {},
    {
        "http.request.method": "GET",
        "http.route": "/api/v1/metrics/summary",
        "http.response.status_code": 200,
        "url.path": "/api/v1/metrics/summary",
        "server.address": "localhost",
    },
    {"db.system": "postgresql", "db.statement": "SELECT 1", "db.operation.name": "SELECT"},
    {"rpc.system": "grpc", "rpc.service": "opentelemetry.proto.collector.trace.v1.TraceService"},
    {"messaging.system": "kafka", "error.type": "timeout"},
]


@pytest.mark.parametrize("attributes", NOT_GENAI)
@pytest.mark.parametrize("span_name", ["", "GET /api/v1/metrics/summary", "chat gpt-4o"])
def test_not_genai(attributes: dict[str, object], span_name: str) -> None:
    assert is_genai(attributes) is False
    assert normalize(attributes, span_name=span_name, status_is_error=True) is None


def test_is_genai_on_every_convention() -> None:
    for marker in (
        {"gen_ai.operation.name": "chat"},
        {"gen_ai.system": "openai"},
        {"openinference.span.kind": "LLM"},
        {"llm.request.type": "chat"},
        {"traceloop.span.kind": "workflow"},
    ):
        assert is_genai(marker)


# --- never raises ---------------------------------------------------------------------------------

REAL_KEYS = [
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens", "gen_ai.response.time_to_first_chunk", "gen_ai.server.ttft",
    "gen_ai.usage.cost", "gen_ai.data_source.id", "server.address", "error.type",
    "otel_llm.cost.usd", "otel_llm.cost.source", "otel_llm.error.category",
    "otel_llm.project.id", "otel_llm.retrieval.documents.count", "openinference.span.kind",
    "llm.model_name", "llm.provider", "llm.system", "llm.token_count.prompt",
    "llm.token_count.completion", "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read", "llm.token_count.prompt_details.cache_write",
    "llm.token_count.completion_details.reasoning", "embedding.model_name", "llm.prompts",
    "retrieval.documents.0.document.id", "retrieval.documents.12.document.score",
    "reranker.output_documents.1.document.id", "llm.request.type", "llm.usage.total_tokens",
    "traceloop.span.kind", "telemetry.sdk.name", "db.operation.name", "db.response.returned_rows",
]
WORDS = [
    "chat", "LLM", "CHAIN", "AGENT", "RETRIEVER", "EMBEDDING", "RERANKER", "TOOL", "workflow",
    "completion", "vectordb", "query", "add", "image", "invoke_agent", "anthropic", "Anthropic",
    "aws.bedrock", "claude-3-5-sonnet", "openlit", "gpt-4o", "12", " 7 ", "1e3", "-5", "NaN",
    "inf", "1" * 40, "", " ", "²",
]
VALUES = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, 10**12, 10**12 + 1, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(WORDS),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.tuples(st.text(max_size=5)),
)
ATTRIBUTES = st.dictionaries(
    st.one_of(st.sampled_from(REAL_KEYS), st.text(max_size=30)), VALUES, max_size=25
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    attributes=ATTRIBUTES,
    span_name=st.one_of(st.text(max_size=40), st.sampled_from(["chat gpt-4o", "openai.chat"])),
    duration=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    resource=st.one_of(st.none(), ATTRIBUTES),
    status_is_error=st.booleans(),
)
def test_never_raises_and_counts_stay_valid(
    attributes: dict[str, object],
    span_name: str,
    duration: float | None,
    resource: dict[str, object] | None,
    status_is_error: bool,
) -> None:
    call = normalize(
        attributes,
        span_name=span_name,
        duration_s=duration,
        status_is_error=status_is_error,
        resource=resource,
    )
    if not is_genai(attributes):
        assert call is None
    if call is None:
        return
    for count in (call.input_tokens, call.output_tokens):
        assert count is None or 0 <= count <= INVALID_TOKEN_COUNT_LIMIT
    for count in (call.cache_read_tokens, call.cache_creation_tokens, call.reasoning_tokens):
        assert 0 <= count <= INVALID_TOKEN_COUNT_LIMIT
    if call.input_tokens is not None:
        assert call.cache_read_tokens + call.cache_creation_tokens <= call.input_tokens
    for amount in (call.duration_s, call.time_to_first_chunk_s, call.cost_usd):
        assert amount is None or (math.isfinite(amount) and amount >= 0)
    assert call.is_error or not status_is_error


def test_openinference_retrieved_document_ids_in_rank_order() -> None:
    call = normalize({
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.1.document.id": "kb-7",
        "retrieval.documents.0.document.id": "kb-2",
        "retrieval.documents.0.document.score": 0.9,
        "retrieval.documents.2.document.id": 42,
    })
    assert call is not None
    assert call.operation == "retrieval"
    assert call.document_ids == ("kb-2", "kb-7", "42")
    assert call.retrieval_documents == 3


# --- the names normalize reads -------------------------------------------------------------------

def _all_names() -> list[str]:
    """Every string constant of the conventions module that looks like an attribute key."""
    import otel_llm.core.conventions as module

    names: set[str] = set()
    for value in vars(module).values():
        items = value if isinstance(value, tuple | frozenset) else (value,)
        names.update(v for v in items if isinstance(v, str) and "." in v and " " not in v)
    return sorted(names)


def test_every_name_belongs_to_one_field() -> None:
    import otel_llm.core.normalize as module

    assert len(module._GROUP_OF) == sum(len(names) for names in module._FIELDS)


_ANY_VALUE = st.one_of(
    st.integers(-5, 5000), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.sampled_from(["chat", "anthropic", "openai", "gpt-4o", "claude-3-5-sonnet", "LLM",
                     "RETRIEVER", "openlit", "vectordb", "query", "12", " ", ""]),
    st.lists(st.integers(0, 3), max_size=2).map(tuple),
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    attrs=st.dictionaries(
        st.one_of(st.sampled_from(_all_names()), st.text(max_size=12),
                  st.builds("retrieval.documents.{}.document.id".format, st.integers(0, 3))),
        _ANY_VALUE, max_size=12,
    ),
    name=st.sampled_from(["chat gpt-4o", "openai.embeddings", "GET /", ""]),
)
def test_read_keys_hold_everything_normalize_reads(attrs: dict[str, Any], name: str) -> None:
    # A host that hands normalize only READ_KEYS (and READ_PREFIXES) gets the same call.
    from otel_llm.core.normalize import READ_KEYS, READ_PREFIXES

    kept = {k: v for k, v in attrs.items() if k in READ_KEYS or k.startswith(READ_PREFIXES)}
    assert normalize(kept, span_name=name) == normalize(attrs, span_name=name)


@pytest.mark.parametrize(("port", "expected"), [(443, 443), ("8080", 8080), (0, None),
                                                (70000, None), (True, None), ("x", None)])
def test_server_port(port: object, expected: int | None) -> None:
    call = normalize({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                      "server.address": "llm.internal", "server.port": port})
    assert call is not None and call.server_port == expected
