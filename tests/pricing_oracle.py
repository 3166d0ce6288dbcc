"""The genai-prices figure for a usage: the oracle our own arithmetic must match."""

from __future__ import annotations

import genai_prices
from genai_prices.types import Usage


def genai_prices_cost(
    model: str,
    provider: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
    )
    return float(genai_prices.calc_price(usage, model, provider_id=provider).total_price)
