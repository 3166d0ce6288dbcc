"""The attribute names of the GenAI conventions that :mod:`otel_llm.core.normalize` reads.

Data only: OpenTelemetry GenAI semantic conventions v1.41 (ours) and their deprecated names,
OpenInference, OpenLLMetry (traceloop), OpenLIT and the anthropic SDK's own tracing. Each field
has a tuple of candidate keys in priority order (the first *valid* value wins), so a new source
is a new tuple entry. The rules that combine them are in :mod:`otel_llm.core.normalize`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from otel_llm import semconv as sc

Keys = tuple[str, ...]

# --- candidate keys per field, in priority order --------------------------------------------
PROVIDER_KEYS: Final[Keys] = (
    sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", "llm.provider", "llm.system",
)
REQUEST_MODEL_KEYS: Final[Keys] = (
    sc.GEN_AI_REQUEST_MODEL, "llm.model_name", "embedding.model_name", "reranker.model_name",
    "llm.request.model",
)
RESPONSE_MODEL_KEYS: Final[Keys] = (sc.GEN_AI_RESPONSE_MODEL, "llm.response.model")
INPUT_KEYS: Final[Keys] = (
    sc.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_KEYS: Final[Keys] = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
TOTAL_KEYS: Final[Keys] = (
    "gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total",
)
# Spec-style cache names: whoever writes them also counts them inside input_tokens. The second
# creation name is the anthropic SDK's (2.x), which sums its input count itself.
CACHE_READ_KEYS: Final[Keys] = (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,)
CACHE_CREATION_KEYS: Final[Keys] = (
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "gen_ai.usage.cache_write.input_tokens",
)
# Foreign / pre-v1.41 cache names (OpenLLMetry, OpenInference, OpenLIT, early contrib anthropic).
FOREIGN_CACHE_READ_KEYS: Final[Keys] = (
    "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.prompt_tokens_details.cache_read", "gen_ai.usage.input_tokens_details.cached",
    "llm.usage.cache_read_input_tokens",
)
FOREIGN_CACHE_CREATION_KEYS: Final[Keys] = (
    "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.prompt_tokens_details.cache_write",
)
REASONING_KEYS: Final[Keys] = (
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens", "gen_ai.usage.completion_tokens_details.reasoning",
)
TTFC_KEYS: Final[Keys] = (
    sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "gen_ai.server.ttft",
    "gen_ai.server.time_to_first_token",
)
# A cost someone else computed, read when otel_llm.cost.usd is absent.
FOREIGN_COST_KEYS: Final[Keys] = (sc.GEN_AI_USAGE_COST, "llm.cost.total")
DATA_SOURCE_KEYS: Final[Keys] = (
    sc.GEN_AI_DATA_SOURCE_ID, "db.collection.name", "db.system.name", "db.system",
)
DOCUMENT_COUNT_KEYS: Final[Keys] = (
    sc.OTEL_LLM_RETRIEVAL_DOCUMENTS_COUNT, "gen_ai.retrieval.document_count",
    "gen_ai.vectordb.search.results_count", "db.response.returned_rows",
)
# OpenInference flattens document lists: "retrieval.documents.3.document.id", ...
DOCUMENT_LIST_PREFIXES: Final[Mapping[str, str]] = {
    sc.OP_RETRIEVAL: "retrieval.documents.", sc.OP_RERANK: "reranker.output_documents.",
}
READ_PREFIXES: Final = tuple(DOCUMENT_LIST_PREFIXES.values())

# --- what kind of span it is --------------------------------------------------------------------
OPENINFERENCE_KIND: Final = "openinference.span.kind"
TRACELOOP_KIND: Final = "traceloop.span.kind"
TRACELOOP_REQUEST_TYPE: Final = "llm.request.type"
KIND_KEYS: Final[Keys] = (OPENINFERENCE_KIND, TRACELOOP_KIND, TRACELOOP_REQUEST_TYPE)
# OpenInference records completions-API prompts here (list, or flattened in newer versions).
PROMPT_KEYS: Final[Keys] = ("llm.prompts", "llm.prompts.0.prompt.text")
# Any of these keys present makes a span worth normalizing (is_genai).
MARKER_KEYS: Final[Keys] = (
    sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", sc.GEN_AI_REQUEST_MODEL,
    OPENINFERENCE_KIND, TRACELOOP_REQUEST_TYPE, TRACELOOP_KIND, "llm.model_name",
    "embedding.model_name", "llm.provider", "llm.system",
)
MARKERS: Final = frozenset(MARKER_KEYS)
# Sources whose prompt count already includes Anthropic's cache counts (see module docstring).
INCLUSIVE_KEYS: Final[Keys] = (*KIND_KEYS, "gen_ai.usage.cache_write.input_tokens")
# Values of gen_ai.operation.name, OpenInference span kinds (lower-cased), traceloop span kinds,
# llm.request.type, and span-name words, to our operation; None: an aggregate of other calls
# (agent, chain, workflow: accounting it would count its children twice) or not a call at all.
OPERATIONS: Final[Mapping[str, str | None]] = {
    "chat": sc.OP_CHAT, "llm": sc.OP_CHAT, "generate_content": "generate_content",
    "text_completion": sc.OP_TEXT_COMPLETION, "completion": sc.OP_TEXT_COMPLETION,
    "completions": sc.OP_TEXT_COMPLETION,
    "embeddings": sc.OP_EMBEDDINGS, "embedding": sc.OP_EMBEDDINGS, "embed": sc.OP_EMBEDDINGS,
    "retrieval": sc.OP_RETRIEVAL, "retrieve": sc.OP_RETRIEVAL, "retriever": sc.OP_RETRIEVAL,
    "vectordb": sc.OP_RETRIEVAL,
    "rerank": sc.OP_RERANK, "reranker": sc.OP_RERANK, "reranking": sc.OP_RERANK,
    "execute_tool": sc.OP_EXECUTE_TOOL, "tool": sc.OP_EXECUTE_TOOL,
    "invoke_agent": None, "create_agent": None, "invoke_workflow": None, "agent": None,
    "workflow": None, "task": None, "chain": None, "team": None, "framework": None,
    "execute_task": None, "guardrail": None, "evaluator": None, "prompt": None,
}
# OpenLIT's "vectordb" operation also covers writes; only reads are retrievals.
DB_OPERATION_KEYS: Final[Keys] = ("db.operation.name", "db.operation")
DB_READS: Final = frozenset({"query", "search", "get", "fetch", "select", "peek"})
# Single names, read like the lists above.
OPERATION_NAME: Final[Keys] = (sc.GEN_AI_OPERATION_NAME,)
OUR_COST: Final[Keys] = (sc.OTEL_LLM_COST_USD,)
OUR_COST_SOURCE: Final[Keys] = (sc.OTEL_LLM_COST_SOURCE,)
ERROR_TYPE: Final[Keys] = (sc.ERROR_TYPE,)
ERROR_CATEGORY: Final[Keys] = (sc.OTEL_LLM_ERROR_CATEGORY,)
ERROR_SEVERITY: Final[Keys] = (sc.OTEL_LLM_ERROR_SEVERITY,)
PROJECT: Final[Keys] = (sc.OTEL_LLM_PROJECT_ID,)
SERVER_ADDRESS: Final[Keys] = (sc.SERVER_ADDRESS,)
SERVER_PORT: Final[Keys] = (sc.SERVER_PORT,)
SDK_NAME: Final = "telemetry.sdk.name"

# --- provider spellings (lower-cased, letters and digits only) to v1.41 gen_ai.provider.name ---
PROVIDER_ALIASES: Final[Mapping[str, Keys]] = {
    "azure.ai.openai": ("azure", "azureopenai", "azaiopenai", "azureaiopenai"),
    "azure.ai.inference": ("azaiinference", "azureaiinference"),
    "aws.bedrock": ("aws", "bedrock", "awsbedrock"),
    "gcp.vertex_ai": ("vertexai", "gcpvertexai", "googlevertexai"),
    "gcp.gemini": ("gemini", "gcpgemini", "googleaistudio"),
    "gcp.gen_ai": ("google", "googlegenai", "gcpgenai"),
    "mistral_ai": ("mistral", "mistralai"),
    "x_ai": ("xai",),
    "ibm.watsonx.ai": ("ibm", "watsonx", "watsonxai", "ibmwatsonx", "ibmwatsonxai", "ibmwatsonai"),
}
PROVIDERS: Final = {a: name for name, spellings in PROVIDER_ALIASES.items() for a in spellings}
# Canonical values skip the alias lookup; other names (openai, groq, ...) pass through lower-cased.
PROVIDER_NAMES: Final = frozenset(PROVIDER_ALIASES)
# Hosts that also serve Claude, with Anthropic's usage shape.
CLAUDE_HOSTS: Final = frozenset({"aws.bedrock", "gcp.vertex_ai"})
