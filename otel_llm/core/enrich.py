"""What a span learns from the core: cost and error category, as attributes to add.

Shared by the hooks (before ``span.end()``), the processor (enriched copy) and the gateway
(protobuf edited in place), so the three hosts write exactly the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_llm import semconv as sc
from otel_llm.core.errors import classify_call
from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import Cost, ErrorInfo, LLMCall

AttributeValue = str | bool | int | float


@dataclass(frozen=True, slots=True)
class Assessment:
    cost: Cost
    error: ErrorInfo | None
    attributes: dict[str, AttributeValue]
    """Attributes to add to the span; never overwrites what the span already says."""


def assess(call: LLMCall, prices: PriceTable) -> Assessment:
    """Price and classify ``call``; return the attributes the span is missing. Never raises."""
    if call.cost_usd is not None:
        # The span was already priced (by us upstream, or another tool): keep its figure.
        source = call.cost_source if call.cost_source in _SOURCES else sc.COST_SOURCE_OVERRIDE
        cost = Cost(call.cost_usd, None, None, source)  # type: ignore[arg-type]
    else:
        cost = prices.price(call)
    error = classify_call(call) if call.is_error else None
    return Assessment(cost, error, cost_attributes(cost, error))


def cost_attributes(cost: Cost, error: ErrorInfo | None) -> dict[str, AttributeValue]:
    """The ``otel_llm.*`` (and de-facto ``gen_ai.usage.cost``) attributes for a cost and error."""
    attrs: dict[str, AttributeValue] = {sc.OTEL_LLM_COST_SOURCE: cost.source}
    if cost.total_usd is not None:
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


_SOURCES = frozenset(
    (sc.COST_SOURCE_PRICE_TABLE, sc.COST_SOURCE_OVERRIDE, sc.COST_SOURCE_UNKNOWN_MODEL)
)
