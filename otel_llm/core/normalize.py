"""Read a span's attributes, written by any GenAI instrumentation, into one :class:`LLMCall`.

The one place that knows how other conventions describe a call: OpenTelemetry GenAI semantic
conventions v1.41 (ours) and their deprecated names, OpenInference, OpenLLMetry (traceloop),
OpenLIT, and the anthropic SDK's own tracing. Their names are data, in
:mod:`otel_llm.core.conventions` (tuples of candidate keys per field, first *valid* value wins),
so a new source is a new tuple entry there.

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
from functools import lru_cache
from typing import Any, Final

from otel_llm import semconv as sc
from otel_llm.core.conventions import (
    CACHE_CREATION_KEYS,
    CACHE_READ_KEYS,
    CLAUDE_HOSTS,
    DATA_SOURCE_KEYS,
    DB_OPERATION_KEYS,
    DB_READS,
    DOCUMENT_COUNT_KEYS,
    DOCUMENT_LIST_PREFIXES,
    ERROR_CATEGORY,
    ERROR_SEVERITY,
    ERROR_TYPE,
    FOREIGN_CACHE_CREATION_KEYS,
    FOREIGN_CACHE_READ_KEYS,
    FOREIGN_COST_KEYS,
    INCLUSIVE_KEYS,
    INPUT_KEYS,
    KIND_KEYS,
    MARKER_KEYS,
    MARKERS,
    OPENINFERENCE_KIND,
    OPERATION_NAME,
    OPERATIONS,
    OUR_COST,
    OUR_COST_SOURCE,
    OUTPUT_KEYS,
    PROJECT,
    PROMPT_KEYS,
    PROVIDER_KEYS,
    PROVIDER_NAMES,
    PROVIDERS,
    READ_PREFIXES,
    REASONING_KEYS,
    REQUEST_MODEL_KEYS,
    RESPONSE_MODEL_KEYS,
    SDK_NAME,
    SERVER_ADDRESS,
    SERVER_PORT,
    TOTAL_KEYS,
    TTFC_KEYS,
    Keys,
)
from otel_llm.core.types import LLMCall

__all__ = ["INVALID_TOKEN_COUNT_LIMIT", "READ_KEYS", "READ_PREFIXES", "is_genai", "normalize"]

INVALID_TOKEN_COUNT_LIMIT: Final = 10**12
"""Token counts above this, or negative, are invalid and read as missing."""


_MAX_TEXT: Final = 256
_MAX_NUMERIC_TEXT: Final = 32  # int() on long digit strings is slow, then raises anyway


def is_genai(attributes: Mapping[str, object]) -> bool:
    """Whether the span carries any GenAI/LLM marker key. Cheap enough for every span; never raises.

    A necessary condition for :func:`normalize` to return a call, not a sufficient one: an agent
    or chain span is GenAI, yet not a call.
    """
    # One C-level pass over the keys: `key in attributes` costs a raised KeyError per miss on the
    # SDK's BoundedAttributes (~1 us each), iterating them does not.
    return not MARKERS.isdisjoint(attributes)


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
    request_model = found.get(REQUEST_MODEL_KEYS)
    response_model = found.get(RESPONSE_MODEL_KEYS)
    model = response_model or request_model
    input_tokens = found.get(INPUT_KEYS)
    output_tokens = found.get(OUTPUT_KEYS)
    operation = _operation(
        a, found, span_name, model,
        has_tokens=input_tokens is not None or output_tokens is not None,
    )
    if operation is None:
        return None
    provider = _provider(found)
    if input_tokens is None:
        input_tokens = _input_from_total(
            found.get(TOTAL_KEYS), output_tokens, operation
        )

    read, creation, foreign_cache = _cache_counts(found)
    if input_tokens is not None and (read or creation):
        excludes_cache = input_tokens < read + creation or (
            _is_anthropic_usage(provider, model)
            and (_is_openlit(a, resource) or (foreign_cache and not _has_any(a, INCLUSIVE_KEYS)))
        )
        if excludes_cache:
            input_tokens = _valid_count(input_tokens + read + creation)
    reasoning = found.get(REASONING_KEYS) or 0
    if output_tokens is not None and output_tokens < reasoning:
        output_tokens = _valid_count(output_tokens + reasoning)

    ours = found.get(OUR_COST)
    cost = ours if ours is not None else found.get(FOREIGN_COST_KEYS)
    # A foreign cost (OpenLIT's gen_ai.usage.cost) comes with no source of ours.
    source = found.get(OUR_COST_SOURCE) if ours is not None or cost is None else None
    error_type = found.get(ERROR_TYPE)
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
        time_to_first_chunk_s=found.get(TTFC_KEYS),
        is_error=bool(status_is_error) or error_type is not None,
        error_type=error_type,
        project=found.get(PROJECT)
        or (_text(resource.get(sc.OTEL_LLM_PROJECT_ID)) if resource is not None else None),
        server_address=found.get(SERVER_ADDRESS),
        server_port=found.get(SERVER_PORT),
        data_source=found.get(DATA_SOURCE_KEYS),
        retrieval_documents=_documents(a, found, operation),
        document_ids=_document_ids(a, operation),
        cost_usd=cost,
        cost_source=source,
        error_category=found.get(ERROR_CATEGORY),
        error_severity=found.get(ERROR_SEVERITY),
    )


# --- operation -----------------------------------------------------------------------------------


def _operation(
    a: Mapping[str, object], found: _Found, span_name: str, model: str | None, *, has_tokens: bool
) -> str | None:
    declared = found.get(OPERATION_NAME)
    if declared is not None:
        word = declared.lower()
        if word not in OPERATIONS:
            # A spec value we do not know (image, audio, ...): a call only if it names a model.
            return word if model else None
        db_operation = found.get(DB_OPERATION_KEYS) if word == "vectordb" else None
        if db_operation is not None and db_operation.lower() not in DB_READS:
            return None
        return OPERATIONS[word]
    kinds = [(key, _text(a.get(key))) for key in KIND_KEYS]
    # An explicit aggregate kind (CHAIN, AGENT, workflow...) wins over any span-name guess.
    if any(kind is not None and OPERATIONS.get(kind.lower(), "") is None for _, kind in kinds):
        return None
    from_name = _operation_from_name(span_name)
    if from_name is not None:
        return from_name
    for key, kind in kinds:
        operation = OPERATIONS.get(kind.lower()) if kind is not None else None
        if operation is None:
            continue
        if key == OPENINFERENCE_KIND and operation == sc.OP_CHAT and _has_any(a, PROMPT_KEYS):
            return sc.OP_TEXT_COMPLETION  # an OpenInference LLM span over a completions API
        return operation
    return sc.OP_CHAT if model and has_tokens else None


def _operation_from_name(span_name: str) -> str | None:
    """``"chat gpt-4o"`` -> chat, ``"openai.embeddings"`` -> embeddings; aggregates say nothing."""
    if not isinstance(span_name, str):
        return None
    head = span_name[:64].split(" ", 1)[0].lower()
    return OPERATIONS.get(head) or OPERATIONS.get(head.rpartition(".")[2])


# --- tokens --------------------------------------------------------------------------------------


def _cache_counts(found: _Found) -> tuple[int, int, bool]:
    """(cache read, cache creation, whether either came from a foreign/deprecated name)."""
    read = found.get(CACHE_READ_KEYS)
    creation = found.get(CACHE_CREATION_KEYS)
    foreign = False
    if read is None:
        read = found.get(FOREIGN_CACHE_READ_KEYS)
        foreign = read is not None
    if creation is None:
        creation = found.get(FOREIGN_CACHE_CREATION_KEYS)
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
    return provider in CLAUDE_HOSTS and model is not None and "claude" in model.lower()


def _is_openlit(a: Mapping[str, object], resource: Mapping[str, object] | None) -> bool:
    names = (_text(source.get(SDK_NAME)) for source in (a, resource or {}))
    return any(name is not None and name.lower() == "openlit" for name in names)


def _documents(a: Mapping[str, object], found: _Found, operation: str) -> int | None:
    count = found.get(DOCUMENT_COUNT_KEYS)
    prefix = DOCUMENT_LIST_PREFIXES.get(operation)
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
    prefix = DOCUMENT_LIST_PREFIXES[sc.OP_RETRIEVAL]
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
    raw: str | None = found.get(PROVIDER_KEYS)
    return None if raw is None else _canonical_provider(raw)


@lru_cache(maxsize=1024)  # a pure function of a few recurring spellings; bounded for invented ones
def _canonical_provider(raw: str) -> str:
    lowered = raw.lower()
    if lowered in PROVIDER_NAMES:
        return lowered
    return PROVIDERS.get("".join(ch for ch in lowered if ch.isalnum()), lowered)


# --- values --------------------------------------------------------------------------------------


def _collect(a: Mapping[str, object]) -> _Found:
    """Each field's value: of the field's names ``a`` holds, the first whose value is valid."""
    found: _Found = {}
    ranks: dict[Keys, int] = {}
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


def _has_any(a: Mapping[str, object], keys: Keys) -> bool:
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


def _port(value: object) -> int | None:
    """A TCP/UDP port, 1..65535."""
    port = _count(value)
    return port if port is not None and 0 < port < 65536 else None


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

_Found = dict[Keys, Any]
# Every field read by name, with how its value is parsed. A span names a few of these keys at
# most, so normalize files the present ones under their field in one pass (_collect): an absent
# field then costs one dict lookup instead of a probe per candidate name.
_FIELDS: Final[Mapping[Keys, Callable[[object], Any]]] = {
    PROVIDER_KEYS: _text, REQUEST_MODEL_KEYS: _text, RESPONSE_MODEL_KEYS: _text,
    INPUT_KEYS: _count, OUTPUT_KEYS: _count, TOTAL_KEYS: _count,
    CACHE_READ_KEYS: _count, CACHE_CREATION_KEYS: _count, FOREIGN_CACHE_READ_KEYS: _count,
    FOREIGN_CACHE_CREATION_KEYS: _count, REASONING_KEYS: _count, TTFC_KEYS: _seconds,
    FOREIGN_COST_KEYS: _seconds, DATA_SOURCE_KEYS: _text, DOCUMENT_COUNT_KEYS: _count,
    DB_OPERATION_KEYS: _text, OPERATION_NAME: _text, OUR_COST: _seconds,
    OUR_COST_SOURCE: _text, ERROR_TYPE: _text, ERROR_CATEGORY: _text, ERROR_SEVERITY: _text,
    PROJECT: _text, SERVER_ADDRESS: _text, SERVER_PORT: _port,
}
_GROUP_OF: Final[Mapping[str, tuple[Keys, int, Callable[[object], Any]]]] = {
    key: (group, rank, parse)
    for group, parse in _FIELDS.items()
    for rank, key in enumerate(group)
}
_GROUPED: Final = frozenset(_GROUP_OF)
READ_KEYS: Final = frozenset(
    (*_GROUPED, *MARKER_KEYS, *KIND_KEYS, *INCLUSIVE_KEYS, *PROMPT_KEYS, SDK_NAME)
)
"""Every attribute key :func:`normalize` reads, besides those starting with
:data:`READ_PREFIXES`: a host may hand it only these (the gateway converts no others)."""
