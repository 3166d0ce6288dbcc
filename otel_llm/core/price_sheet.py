"""A model's prices as text, for ``otel-llm prices MODEL``: what the table resolved it to, USD per
million tokens (and tiers), and where the figures come from."""

from __future__ import annotations

import genai_prices

from otel_llm.core.pricing import PriceTable, RateTier

__all__ = ("describe",)

_LABELS = ("input", "output", "cache read", "cache write")


def describe(table: PriceTable, model: str, provider: str | None = None) -> str:
    """Human-readable prices of ``model`` for the CLI: what it resolved to, USD per 1M tokens
    (and tiers), and where the prices come from; or an "unknown model" message."""
    asked = model if provider is None else f"{model} (provider {provider})"
    rates = table.rates(provider, model)
    if rates is None:
        where = f"genai-prices {genai_prices.__version__}"
        if table.origin:
            where += f" or {table.origin}"
        return (
            f"unknown model: {asked}\n"
            f"No price in {where}. Add it to a prices file (models: [{{model: ..., input: ..., "
            f"output: ...}}]) or alias it to a priced model, and pass the file with --prices."
            + ("" if provider else " Without a provider, it is guessed from the model name.")
        )
    if rates.source == "override":
        source = f"override file {table.origin}" if table.origin else "override file"
    else:
        source = f"genai-prices {genai_prices.__version__}"
    lines = [
        f"model:     {rates.model_id or model}",
        f"provider:  {rates.provider_id or 'any'}",
        f"asked for: {asked}",
        f"source:    {source}",
    ]
    if rates.per_request:
        lines.append(f"fee:       ${rates.per_request:g} per request, on top of tokens")
    base: RateTier = (0, rates.input, rates.output, rates.cache_read, rates.cache_write)
    for start, *values in (base, *rates.tiers):
        lines.append(
            f"above {start:,} input tokens (applies to all tokens of the call):"
            if start
            else "USD per 1M tokens:"
        )
        for label, rate in zip(_LABELS, values, strict=True):
            lines.append(f"  {label:<12} {'- (billed as input)' if rate is None else f'${rate:g}'}")
    return "\n".join(lines)
