"""Attribute and metric names: ``gen_ai.*`` re-exported from OpenTelemetry, ``otel_llm.*`` ours.

One place for every name we write. Names of *other* conventions that we only read live in
:mod:`otel_llm.core.normalize`.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _g
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _m
from opentelemetry.semconv.attributes import error_attributes as _e
from opentelemetry.semconv.attributes import server_attributes as _s

# --- standard GenAI attributes (semantic conventions v1.41) -----------------------------------
GEN_AI_OPERATION_NAME: Final = _g.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _g.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _g.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL: Final = _g.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID: Final = _g.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _g.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _g.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
GEN_AI_REQUEST_MAX_TOKENS: Final = _g.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_TEMPERATURE: Final = _g.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_TOP_P: Final = _g.GEN_AI_REQUEST_TOP_P
GEN_AI_REQUEST_TOP_K: Final = _g.GEN_AI_REQUEST_TOP_K
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = _g.GEN_AI_REQUEST_FREQUENCY_PENALTY
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = _g.GEN_AI_REQUEST_PRESENCE_PENALTY
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _g.GEN_AI_REQUEST_STOP_SEQUENCES
GEN_AI_REQUEST_SEED: Final = _g.GEN_AI_REQUEST_SEED
GEN_AI_REQUEST_CHOICE_COUNT: Final = _g.GEN_AI_REQUEST_CHOICE_COUNT
GEN_AI_REQUEST_STREAM: Final = _g.GEN_AI_REQUEST_STREAM
GEN_AI_USAGE_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
GEN_AI_TOKEN_TYPE: Final = _g.GEN_AI_TOKEN_TYPE
GEN_AI_DATA_SOURCE_ID: Final = _g.GEN_AI_DATA_SOURCE_ID
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = _g.GEN_AI_RETRIEVAL_QUERY_TEXT
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = _g.GEN_AI_EMBEDDINGS_DIMENSION_COUNT
GEN_AI_WORKFLOW_NAME: Final = _g.GEN_AI_WORKFLOW_NAME
GEN_AI_INPUT_MESSAGES: Final = _g.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _g.GEN_AI_OUTPUT_MESSAGES
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _g.GEN_AI_SYSTEM_INSTRUCTIONS
# Not (yet) in the Python semconv package at the version we pin against.
GEN_AI_RETRIEVAL_TOP_K: Final = "gen_ai.retrieval.top_k"
SERVER_ADDRESS: Final = _s.SERVER_ADDRESS
SERVER_PORT: Final = _s.SERVER_PORT
ERROR_TYPE: Final = _e.ERROR_TYPE

# De-facto name read by Langfuse / OpenLIT dashboards: we write our cost there too.
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"

# --- ours -------------------------------------------------------------------------------------
OTEL_LLM_COST_USD: Final = "otel_llm.cost.usd"
OTEL_LLM_COST_INPUT_USD: Final = "otel_llm.cost.input_usd"
OTEL_LLM_COST_OUTPUT_USD: Final = "otel_llm.cost.output_usd"
OTEL_LLM_COST_SOURCE: Final = "otel_llm.cost.source"
OTEL_LLM_ERROR_CATEGORY: Final = "otel_llm.error.category"
OTEL_LLM_ERROR_SEVERITY: Final = "otel_llm.error.severity"
OTEL_LLM_PROJECT_ID: Final = "otel_llm.project.id"
OTEL_LLM_RETRIEVAL_DOCUMENTS_COUNT: Final = "otel_llm.retrieval.documents.count"
OTEL_LLM_RETRIEVAL_TOP_SCORE: Final = "otel_llm.retrieval.top_score"
OTEL_LLM_RERANK_TOP_N: Final = "otel_llm.rerank.top_n"

# Values of otel_llm.cost.source
COST_SOURCE_PRICE_TABLE: Final = "price_table"
COST_SOURCE_OVERRIDE: Final = "override"
COST_SOURCE_UNKNOWN_MODEL: Final = "unknown_model"

# Operations (gen_ai.operation.name); rerank is ours.
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_RERANK: Final = "rerank"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"

# --- metrics ----------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = _m.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_OPERATION_DURATION: Final = _m.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TIME_TO_FIRST_CHUNK: Final = _m.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
# Unit "usd" is kept verbatim by the Prometheus translation, giving otel_llm_cost_usd_total
# ("USD" would not be lower-cased by every translator).
METRIC_COST: Final = "otel_llm.cost"
METRIC_COST_UNIT: Final = "usd"
METRIC_ERRORS: Final = "otel_llm.errors"
METRIC_RETRIEVAL_DOCUMENTS: Final = "otel_llm.retrieval.documents"
METRIC_ALERTS_FIRING: Final = "otel_llm.alerts.firing"
METRIC_ALERTS_NOTIFICATIONS: Final = "otel_llm.alerts.notifications"
METRIC_UNPRICED_CALLS: Final = "otel_llm.cost.unpriced_calls"
METRIC_INVALID_INPUT: Final = "otel_llm.invalid_input"
METRIC_INTERNAL_ERRORS: Final = "otel_llm.internal_errors"

# Bucket boundaries advised by the GenAI semantic conventions.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DOCUMENT_BUCKETS: Final = (0, 1, 2, 5, 10, 20, 50, 100)
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
