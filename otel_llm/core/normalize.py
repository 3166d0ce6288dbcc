"""Read a span's attributes, written by any GenAI instrumentation, into one :class:`LLMCall`.

The one place that knows the attribute names of other conventions: OpenTelemetry GenAI semantic
conventions v1.41 (ours) and their deprecated names, OpenInference, OpenLLMetry (traceloop),
OpenLIT, and the anthropic SDK's own tracing. The names are data (tuples of candidate keys per
field, first *valid* value wins) at the top of this module, so a new source is a new tuple entry.

Pure and total: no I/O, no state, never raises. A value of the wrong type, a NaN, a bool where a
number belongs, a negative or absurd count (above :data:`INVALID_TOKEN_COUNT_LIMIT`), a list,
bytes, or text longer than 256 characters where an identifier belongs, is treated as missing.

Cached input tokens. The GenAI spec, like :class:`LLMCall`, counts cache-read and cache-creation
tokens *inside* the input count. Anthropic's API reports ``input_tokens`` *without* them, and
instrumentations differ in whether they add them back. The input count is therefore summed
(``input + cache_read + cache_creation``) exactly when

1. ``input < cache_read + cache_creation``: an inclusive count cannot be smaller than its parts; or
2. the provider is Anthropic (or ``aws.bedrock`` / ``gcp.vertex_ai`` serving a Claude model), and
   a. the span comes from OpenLIT (``telemetry.sdk.name == "openlit"`` on span or resource), which
      records Anthropic's raw ``input_tokens`` whatever names it uses, or
   b. the cache counts come from foreign or deprecated names
      (``gen_ai.usage.cache_read_input_tokens``, ``llm.token_count.prompt_details.*``, ...) and
      the span is not from a source known to add them itself: OpenLLMetry (``llm.request.type``
      / ``traceloop.span.kind``) and OpenInference (``openinference.span.kind``) both already
      report inclusive prompt counts.

Everything else is taken as is: spec-compliant spans (v1.41 names, input >= cache), and the
anthropic SDK's own ``anthropic.messages.create`` spans, whose ``gen_ai.usage.input_tokens`` it
already sums with both cache counts (it names cache creation
``gen_ai.usage.cache_write.input_tokens``). Likewise ``output_tokens`` includes reasoning tokens:
when it is smaller than the reasoning count, the source reported them apart and they are summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from otel_llm import semconv as sc
from otel_llm.core.types import LLMCall

__all__ = ["INVALID_TOKEN_COUNT_LIMIT", "READ_KEYS", "READ_PREFIXES", "is_genai", "normalize"]

INVALID_TOKEN_COUNT_LIMIT: Final = 10**12
"""Token counts above this, or negative, are invalid and read as missing."""

_Keys = tuple[str, ...]
_T = TypeVar("_T")

# --- candidate keys per field, in priority order --------------------------------------------
_PROVIDER_KEYS: Final[_Keys] = (
    sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", "llm.provider", "llm.system",
)
_REQUEST_MODEL_KEYS: Final[_Keys] = (
    sc.GEN_AI_REQUEST_MODEL, "llm.model_name", "embedding.model_name", "reranker.model_name",
    "llm.request.model",
)
_RESPONSE_MODEL_KEYS: Final[_Keys] = (sc.GEN_AI_RESPONSE_MODEL, "llm.response.model")
_INPUT_KEYS: Final[_Keys] = (
    sc.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT_KEYS: Final[_Keys] = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_TOTAL_KEYS: Final[_Keys] = (
    "gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total",
)
# Spec-style cache names: whoever writes them also counts them inside input_tokens. The second
# creation name is the anthropic SDK's (2.x), which sums its input count itself.
_CACHE_READ_KEYS: Final[_Keys] = (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,)
_CACHE_CREATION_KEYS: Final[_Keys] = (
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "gen_ai.usage.cache_write.input_tokens",
)
# Foreign / pre-v1.41 cache names (OpenLLMetry, OpenInference, OpenLIT, early contrib anthropic).
_FOREIGN_CACHE_READ_KEYS: Final[_Keys] = (
    "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.prompt_tokens_details.cache_read", "gen_ai.usage.input_tokens_details.cached",
    "llm.usage.cache_read_input_tokens",
)
_FOREIGN_CACHE_CREATION_KEYS: Final[_Keys] = (
    "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.prompt_tokens_details.cache_write",
)
_REASONING_KEYS: Final[_Keys] = (
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens", "gen_ai.usage.completion_tokens_details.reasoning",
)
_TTFC_KEYS: Final[_Keys] = (
    sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "gen_ai.server.ttft",
    "gen_ai.server.time_to_first_token",
)
# A cost someone else computed, read when otel_llm.cost.usd is absent.
_FOREIGN_COST_KEYS: Final[_Keys] = (sc.GEN_AI_USAGE_COST, "llm.cost.total")
_DATA_SOURCE_KEYS: Final[_Keys] = (
    sc.GEN_AI_DATA_SOURCE_ID, "db.collection.name", "db.system.name", "db.system",
)
_DOCUMENT_COUNT_KEYS: Final[_Keys] = (
    sc.OTEL_LLM_RETRIEVAL_DOCUMENTS_COUNT, "gen_ai.retrieval.document_count",
    "gen_ai.vectordb.search.results_count", "db.response.returned_rows",
)
# OpenInference flattens document lists: "retrieval.documents.3.document.id", ...
_DOCUMENT_LIST_PREFIXES: Final[Mapping[str, str]] = {
    sc.OP_RETRIEVAL: "retrieval.documents.", sc.OP_RERANK: "reranker.output_documents.",
}
READ_PREFIXES: Final = tuple(_DOCUMENT_LIST_PREFIXES.values())

# --- what kind of span it is --------------------------------------------------------------------
_OPENINFERENCE_KIND: Final = "openinference.span.kind"
_TRACELOOP_KIND: Final = "traceloop.span.kind"
_TRACELOOP_REQUEST_TYPE: Final = "llm.request.type"
_KIND_KEYS: Final[_Keys] = (_OPENINFERENCE_KIND, _TRACELOOP_KIND, _TRACELOOP_REQUEST_TYPE)
# OpenInference records completions-API prompts here (list, or flattened in newer versions).
_PROMPT_KEYS: Final[_Keys] = ("llm.prompts", "llm.prompts.0.prompt.text")
# Any of these keys present makes a span worth normalizing (is_genai).
_MARKER_KEYS: Final[_Keys] = (
    sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", sc.GEN_AI_REQUEST_MODEL,
    _OPENINFERENCE_KIND, _TRACELOOP_REQUEST_TYPE, _TRACELOOP_KIND, "llm.model_name",
    "embedding.model_name", "llm.provider", "llm.system",
)
_MARKERS: Final = frozenset(_MARKER_KEYS)
# Sources whose prompt count already includes Anthropic's cache counts (see module docstring).
_INCLUSIVE_KEYS: Final[_Keys] = (*_KIND_KEYS, "gen_ai.usage.cache_write.input_tokens")
# Values of gen_ai.operation.name, OpenInference span kinds (lower-cased), traceloop span kinds,
# llm.request.type, and span-name words, to our operation; None: an aggregate of other calls
# (agent, chain, workflow: accounting it would count its children twice) or not a call at all.
_OPERATIONS: Final[Mapping[str, str | None]] = {
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
_DB_OPERATION_KEYS: Final[_Keys] = ("db.operation.name", "db.operation")
_DB_READS: Final = frozenset({"query", "search", "get", "fetch", "select", "peek"})
# Single names, read like the lists above.
_OPERATION_NAME: Final[_Keys] = (sc.GEN_AI_OPERATION_NAME,)
_OUR_COST: Final[_Keys] = (sc.OTEL_LLM_COST_USD,)
_OUR_COST_SOURCE: Final[_Keys] = (sc.OTEL_LLM_COST_SOURCE,)
_ERROR_TYPE: Final[_Keys] = (sc.ERROR_TYPE,)
_ERROR_CATEGORY: Final[_Keys] = (sc.OTEL_LLM_ERROR_CATEGORY,)
_ERROR_SEVERITY: Final[_Keys] = (sc.OTEL_LLM_ERROR_SEVERITY,)
_PROJECT: Final[_Keys] = (sc.OTEL_LLM_PROJECT_ID,)
_SERVER_ADDRESS: Final[_Keys] = (sc.SERVER_ADDRESS,)
_SDK_NAME: Final = "telemetry.sdk.name"

# --- provider spellings (lower-cased, letters and digits only) to v1.41 gen_ai.provider.name ---
_PROVIDER_ALIASES: Final[Mapping[str, _Keys]] = {
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
_PROVIDERS: Final = {a: name for name, spellings in _PROVIDER_ALIASES.items() for a in spellings}
# Canonical values skip the alias lookup; other names (openai, groq, ...) pass through lower-cased.
_PROVIDER_NAMES: Final = frozenset(_PROVIDER_ALIASES)
# Hosts that also serve Claude, with Anthropic's usage shape.
_CLAUDE_HOSTS: Final = frozenset({"aws.bedrock", "gcp.vertex_ai"})

_MAX_TEXT: Final = 256
_MAX_NUMERIC_TEXT: Final = 32  # int() on long digit strings is slow, then raises anyway


def is_genai(attributes: Mapping[str, object]) -> bool:
    """Whether the span carries any GenAI/LLM marker key. Cheap enough for every span; never raises.

    A necessary condition for :func:`normalize` to return a call, not a sufficient one: an agent
    or chain span is GenAI, yet not a call.
    """
    # One C-level pass over the keys: `key in attributes` costs a raised KeyError per miss on the
    # SDK's BoundedAttributes (~1 us each), iterating them does not.
    return not _MARKERS.isdisjoint(attributes)


def normalize(
    attributes: Mapping[str, object],
    *,
    span_name: str = "",
    duration_s: float | None = None,
    status_is_error: bool = False,
    resource: Mapping[str, object] | None = None,
) -> LLMCall | None:
    """The LLM/RAG call the span describes, or None when it describes none. Never raises.

    None for spans without GenAI markers (HTTP, DB, ...), for aggregates of other calls (agents,
    chains, workflows) and for GenAI spans that are not calls (e.g. a token-count request). The
    operation comes from ``gen_ai.operation.name``, else the span name (``"chat gpt-4o"``,
    ``"openai.embeddings"``), else OpenInference / OpenLLMetry kinds, else ``chat`` when the span
    has a model and token counts. Token counts follow the GenAI spec (see the module docstring).
    ``otel_llm.project.id`` is read from the span, then from ``resource``.
    """
    if not is_genai(attributes):
        return None
    # Plain dict lookups from here on: Mapping.get on the SDK's attributes raises per miss.
    a = attributes if type(attributes) is dict else dict(attributes)
    found = _collect(a)
    request_model = found.get(_REQUEST_MODEL_KEYS)
    response_model = found.get(_RESPONSE_MODEL_KEYS)
    model = response_model or request_model
    input_tokens = found.get(_INPUT_KEYS)
    output_tokens = found.get(_OUTPUT_KEYS)
    operation = _operation(
        a, found, span_name, model,
        has_tokens=input_tokens is not None or output_tokens is not None,
    )
    if operation is None:
        return None
    provider = _provider(found)
    if input_tokens is None:
        input_tokens = _input_from_total(
            found.get(_TOTAL_KEYS), output_tokens, operation
        )

    read, creation, foreign_cache = _cache_counts(found)
    if input_tokens is not None and (read or creation):
        excludes_cache = input_tokens < read + creation or (
            _is_anthropic_usage(provider, model)
            and (_is_openlit(a, resource) or (foreign_cache and not _has_any(a, _INCLUSIVE_KEYS)))
        )
        if excludes_cache:
            input_tokens = _valid_count(input_tokens + read + creation)
    reasoning = found.get(_REASONING_KEYS) or 0
    if output_tokens is not None and output_tokens < reasoning:
        output_tokens = _valid_count(output_tokens + reasoning)

    ours = found.get(_OUR_COST)
    cost = ours if ours is not None else found.get(_FOREIGN_COST_KEYS)
    # A foreign cost (OpenLIT's gen_ai.usage.cost) comes with no source of ours.
    source = found.get(_OUR_COST_SOURCE) if ours is not None or cost is None else None
    error_type = found.get(_ERROR_TYPE)
    return LLMCall(
        operation=operation,
        provider=provider,
        request_model=request_model,
        response_model=response_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=read,
        cache_creation_tokens=creation,
        reasoning_tokens=reasoning,
        duration_s=_seconds(duration_s),
        time_to_first_chunk_s=found.get(_TTFC_KEYS),
        is_error=bool(status_is_error) or error_type is not None,
        error_type=error_type,
        project=found.get(_PROJECT)
        or (_text(resource.get(sc.OTEL_LLM_PROJECT_ID)) if resource is not None else None),
        server_address=found.get(_SERVER_ADDRESS),
        data_source=found.get(_DATA_SOURCE_KEYS),
        retrieval_documents=_documents(a, found, operation),
        document_ids=_document_ids(a, operation),
        cost_usd=cost,
        cost_source=source,
        error_category=found.get(_ERROR_CATEGORY),
        error_severity=found.get(_ERROR_SEVERITY),
    )


# --- operation -----------------------------------------------------------------------------------


def _operation(
    a: Mapping[str, object], found: _Found, span_name: str, model: str | None, *, has_tokens: bool
) -> str | None:
    declared = found.get(_OPERATION_NAME)
    if declared is not None:
        word = declared.lower()
        if word not in _OPERATIONS:
            # A spec value we do not know (image, audio, ...): a call only if it names a model.
            return word if model else None
        db_operation = found.get(_DB_OPERATION_KEYS) if word == "vectordb" else None
        if db_operation is not None and db_operation.lower() not in _DB_READS:
            return None
        return _OPERATIONS[word]
    kinds = [(key, _text(a.get(key))) for key in _KIND_KEYS]
    # An explicit aggregate kind (CHAIN, AGENT, workflow...) wins over any span-name guess.
    if any(kind is not None and _OPERATIONS.get(kind.lower(), "") is None for _, kind in kinds):
        return None
    from_name = _operation_from_name(span_name)
    if from_name is not None:
        return from_name
    for key, kind in kinds:
        operation = _OPERATIONS.get(kind.lower()) if kind is not None else None
        if operation is None:
            continue
        if key == _OPENINFERENCE_KIND and operation == sc.OP_CHAT and _has_any(a, _PROMPT_KEYS):
            return sc.OP_TEXT_COMPLETION  # an OpenInference LLM span over a completions API
        return operation
    return sc.OP_CHAT if model and has_tokens else None


def _operation_from_name(span_name: str) -> str | None:
    """``"chat gpt-4o"`` -> chat, ``"openai.embeddings"`` -> embeddings; aggregates say nothing."""
    if not isinstance(span_name, str):
        return None
    head = span_name[:64].split(" ", 1)[0].lower()
    return _OPERATIONS.get(head) or _OPERATIONS.get(head.rpartition(".")[2])


# --- tokens --------------------------------------------------------------------------------------


def _cache_counts(found: _Found) -> tuple[int, int, bool]:
    """(cache read, cache creation, whether either came from a foreign/deprecated name)."""
    read = found.get(_CACHE_READ_KEYS)
    creation = found.get(_CACHE_CREATION_KEYS)
    foreign = False
    if read is None:
        read = found.get(_FOREIGN_CACHE_READ_KEYS)
        foreign = read is not None
    if creation is None:
        creation = found.get(_FOREIGN_CACHE_CREATION_KEYS)
        foreign = foreign or creation is not None
    return read or 0, creation or 0, foreign


def _input_from_total(total: int | None, output: int | None, operation: str) -> int | None:
    # Only when the split is known: total - output, or all of it for embeddings (no output).
    if total is None:
        return None
    if output is not None:
        return total - output if total >= output else None
    return total if operation == sc.OP_EMBEDDINGS else None


def _is_anthropic_usage(provider: str | None, model: str | None) -> bool:
    if provider == "anthropic":
        return True
    return provider in _CLAUDE_HOSTS and model is not None and "claude" in model.lower()


def _is_openlit(a: Mapping[str, object], resource: Mapping[str, object] | None) -> bool:
    names = (_text(source.get(_SDK_NAME)) for source in (a, resource or {}))
    return any(name is not None and name.lower() == "openlit" for name in names)


def _documents(a: Mapping[str, object], found: _Found, operation: str) -> int | None:
    count = found.get(_DOCUMENT_COUNT_KEYS)
    prefix = _DOCUMENT_LIST_PREFIXES.get(operation)
    if count is not None or prefix is None:
        return count
    highest = -1
    for key in a:  # one pass over the keys, only for retrieval / rerank spans
        if isinstance(key, str) and key.startswith(prefix):
            index = key[len(prefix):].partition(".")[0]
            if 0 < len(index) < 7 and index.isascii() and index.isdigit():
                highest = max(highest, int(index))
    return highest + 1 if highest >= 0 else None


def _document_ids(a: Mapping[str, object], operation: str) -> tuple[str, ...]:
    """OpenInference's ``retrieval.documents.N.document.id`` in rank order (for RAG feedback)."""
    if operation != sc.OP_RETRIEVAL:
        return ()
    prefix = _DOCUMENT_LIST_PREFIXES[sc.OP_RETRIEVAL]
    found: dict[int, str] = {}
    for key, value in a.items():
        if isinstance(key, str) and key.startswith(prefix) and key.endswith(".document.id"):
            index = key[len(prefix):-len(".document.id")]
            if 0 < len(index) < 4 and index.isascii() and index.isdigit():
                text = (str(value) if isinstance(value, int) and not isinstance(value, bool)
                        else _text(value))
                if text:
                    found[int(index)] = text
    return tuple(found[i] for i in sorted(found))


def _provider(found: _Found) -> str | None:
    raw: str | None = found.get(_PROVIDER_KEYS)
    if raw is None:
        return None
    known = _provider_seen.get(raw)
    if known is not None:
        return known
    lowered = raw.lower()
    if lowered not in _PROVIDER_NAMES:
        lowered = _PROVIDERS.get("".join(ch for ch in lowered if ch.isalnum()), lowered)
    if len(_provider_seen) < _MAX_PROVIDERS_SEEN:  # bounded: a sender may invent names
        _provider_seen[raw] = lowered
    return lowered


# Spellings already resolved: a pure cache of the function above (same answer either way).
_provider_seen: dict[str, str] = {}
_MAX_PROVIDERS_SEEN: Final = 1024


# --- values --------------------------------------------------------------------------------------


def _collect(a: Mapping[str, object]) -> _Found:
    """Each field's value: of the field's names ``a`` holds, the first whose value is valid."""
    found: _Found = {}
    ranks: dict[_Keys, int] = {}
    for key in _GROUPED.intersection(a):
        group, rank, parse = _GROUP_OF[key]
        value = a[key]
        if value is None or (parsed := parse(value)) is None:
            continue
        best = ranks.get(group)
        if best is None or rank < best:
            ranks[group] = rank
            found[group] = parsed
    return found


def _has_any(a: Mapping[str, object], keys: _Keys) -> bool:
    return any(key in a for key in keys)


def _text(value: object) -> str | None:
    """A non-empty identifier-like string, stripped; anything else is missing."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped if 0 < len(stripped) <= _MAX_TEXT else None


def _valid_count(n: int) -> int | None:
    return n if 0 <= n <= INVALID_TOKEN_COUNT_LIMIT else None


def _count(value: object) -> int | None:
    """A token count: int, integral float or numeric string, 0..limit; bools are not counts."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _valid_count(value)
    if isinstance(value, str) and len(value) <= _MAX_NUMERIC_TEXT:
        try:
            return _valid_count(int(value))
        except ValueError:
            value = _number(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return _valid_count(int(value))
    return None


def _number(value: object) -> float | None:
    """A finite float from an int, float or numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float) and not (
        isinstance(value, str) and len(value) <= _MAX_NUMERIC_TEXT
    ):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # "abc", 10**400
        return None
    return number if math.isfinite(number) else None


def _seconds(value: object) -> float | None:
    """A non-negative finite amount (seconds, USD)."""
    number = _number(value)
    return number if number is not None and number >= 0 else None


# --- the fields, by name --------------------------------------------------------------------

_Found = dict["_Keys", Any]
# Every field read by name, with how its value is parsed. A span names a few of these keys at
# most, so normalize files the present ones under their field in one pass (_collect): an absent
# field then costs one dict lookup instead of a probe per candidate name.
_FIELDS: Final[Mapping[_Keys, Callable[[object], Any]]] = {
    _PROVIDER_KEYS: _text, _REQUEST_MODEL_KEYS: _text, _RESPONSE_MODEL_KEYS: _text,
    _INPUT_KEYS: _count, _OUTPUT_KEYS: _count, _TOTAL_KEYS: _count,
    _CACHE_READ_KEYS: _count, _CACHE_CREATION_KEYS: _count, _FOREIGN_CACHE_READ_KEYS: _count,
    _FOREIGN_CACHE_CREATION_KEYS: _count, _REASONING_KEYS: _count, _TTFC_KEYS: _seconds,
    _FOREIGN_COST_KEYS: _seconds, _DATA_SOURCE_KEYS: _text, _DOCUMENT_COUNT_KEYS: _count,
    _DB_OPERATION_KEYS: _text, _OPERATION_NAME: _text, _OUR_COST: _seconds,
    _OUR_COST_SOURCE: _text, _ERROR_TYPE: _text, _ERROR_CATEGORY: _text, _ERROR_SEVERITY: _text,
    _PROJECT: _text, _SERVER_ADDRESS: _text,
}
_GROUP_OF: Final[Mapping[str, tuple[_Keys, int, Callable[[object], Any]]]] = {
    key: (group, rank, parse)
    for group, parse in _FIELDS.items()
    for rank, key in enumerate(group)
}
_GROUPED: Final = frozenset(_GROUP_OF)
READ_KEYS: Final = frozenset(
    (*_GROUPED, *_MARKER_KEYS, *_KIND_KEYS, *_INCLUSIVE_KEYS, *_PROMPT_KEYS, _SDK_NAME)
)
"""Every attribute key :func:`normalize` reads, besides those starting with
:data:`READ_PREFIXES`: a host may hand it only these (the gateway converts no others)."""
