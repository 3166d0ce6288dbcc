"""What a span learns from the core: cost and error category, as attributes to add.

Shared by the hooks (before ``span.end()``), the processor (enriched copy) and the gateway
(protobuf edited in place), so the three hosts write exactly the same attributes.
"""

from __future__ import annotations

from typing import NamedTuple

from otel_llm import semconv as sc
from otel_llm.core.errors import classify_call
from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import Cost, ErrorInfo, LLMCall

AttributeValue = str | bool | int | float


# Operations that are billed per token; retrieval, tools and workflows carry no cost.
PRICED_OPERATIONS = frozenset(
    (sc.OP_CHAT, sc.OP_TEXT_COMPLETION, sc.OP_EMBEDDINGS, sc.OP_RERANK, "generate_content")
)


class Assessment(NamedTuple):
    cost: Cost | None
    """None for operations that are not priced."""
    error: ErrorInfo | None
    attributes: dict[str, AttributeValue]
    """Attributes to add to the span; never overwrites what the span already says."""


def assess(call: LLMCall, prices: PriceTable, error: ErrorInfo | None = None) -> Assessment:
    """Price and classify ``call``; return the cost and error attributes for its span.

    ``error`` is what the caller already knows (e.g. classified from the exception); else a
    failed call is classified from its ``error.type``. A call that reported no tokens at all
    (typically a failed one) is not priced.
    """
    cost: Cost | None
    if call.cost_usd is not None:
        # The span was already priced (by us upstream, or another tool): keep its figure.
        source = call.cost_source if call.cost_source in _SOURCES else sc.COST_SOURCE_OVERRIDE
        cost = Cost(call.cost_usd, None, None, source)  # type: ignore[arg-type]
    elif call.operation in PRICED_OPERATIONS and (
        call.input_tokens is not None or call.output_tokens is not None
    ):
        cost = prices.price(call)
    else:
        cost = None
    if error is None and call.is_error:
        error = classify_call(call)
    return Assessment(cost, error, cost_attributes(cost, error))


def cost_attributes(cost: Cost | None, error: ErrorInfo | None) -> dict[str, AttributeValue]:
    """The ``otel_llm.*`` (and de-facto ``gen_ai.usage.cost``) attributes for a cost and error."""
    attrs: dict[str, AttributeValue] = {}
    if cost is not None:
        attrs[sc.OTEL_LLM_COST_SOURCE] = cost.source
    if cost is not None and cost.total_usd is not None:
        attrs[sc.OTEL_LLM_COST_USD] = cost.total_usd
        attrs[sc.GEN_AI_USAGE_COST] = cost.total_usd
        if cost.input_usd is not None:
            attrs[sc.OTEL_LLM_COST_INPUT_USD] = cost.input_usd
        if cost.output_usd is not None:
            attrs[sc.OTEL_LLM_COST_OUTPUT_USD] = cost.output_usd
    if error is not None:
        attrs[sc.ERROR_TYPE] = error.type
        attrs[sc.OTEL_LLM_ERROR_CATEGORY] = error.category
        attrs[sc.OTEL_LLM_ERROR_SEVERITY] = error.severity
    return attrs


WRITTEN_KEYS = frozenset(
    cost_attributes(
        Cost(1.0, 0.5, 0.5, sc.COST_SOURCE_PRICE_TABLE), ErrorInfo("system_error", "high", "x")
    )
)
"""Every attribute :func:`cost_attributes` may write (derived from it: a call writing them all)."""

_SOURCES = frozenset(
    (sc.COST_SOURCE_PRICE_TABLE, sc.COST_SOURCE_OVERRIDE, sc.COST_SOURCE_UNKNOWN_MODEL)
)
