"""Pricing benchmark (BENCHMARKS.md §2): warm ``PriceTable.price`` vs ``genai_prices.calc_price``.

Target: a warm lookup + cost <= 5 µs per call. Machines are noisy, so contenders run in many short
interleaved rounds (order shuffled each round) and the table reports per-round medians; the A/A
line (the same ``price`` call timed as two contenders) shows the noise level, and ``noop`` the
cost of the timing loop itself; "@235 µs" is the warm time implied by the paired speedup when
calc_price takes the 235 µs quoted in BENCHMARKS §2.
Run: ``python bench/bench_pricing.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from genai_prices import Usage, calc_price

from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import LLMCall

# (label, gen_ai.provider.name, model on the span, genai-prices provider id, model for
#  calc_price, (input incl. cached, cache read, cache write, output))
CASES = [
    ("gpt-4o", "openai", "gpt-4o-2024-08-06", "openai", "gpt-4o-2024-08-06",
     (12_000, 8_192, 0, 700)),
    ("claude-sonnet-4-5 >200k", "anthropic", "claude-sonnet-4-5", "anthropic",
     "claude-sonnet-4-5", (250_000, 100_000, 20_000, 3_000)),
    ("gemini-2.5-flash", "gcp.gemini", "gemini-2.5-flash", "google", "gemini-2.5-flash",
     (20_000, 10_000, 0, 2_000)),
    ("azure deployment alias", "azure.ai.openai", "prod-gpt4o", "azure", "gpt-4o",
     (3_000, 0, 0, 400)),
]  # fmt: skip


# BENCHMARKS §2 quotes calc_price at ~235 µs "here"; this machine flips between speeds, so the
# verdict uses the paired ratio, scaled to that reference, rather than a raw time.
REFERENCE_CALC_PRICE_US = 235.0
TARGET_US = 5.0


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n / 1000


def bench_case(
    provider: str, model: str, provider_id: str, ref_model: str, usage: tuple[int, ...], rounds: int
) -> dict[str, float]:
    inp, cache_read, cache_write, out = usage
    table = PriceTable(aliases={"prod-gpt4o": "gpt-4o"})
    call = LLMCall(
        operation="chat",
        provider=provider,
        request_model=model,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
    )
    ref_usage = Usage(
        input_tokens=inp,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=out,
    )
    warm = table.price(call)  # resolve once: what follows is the warm path
    ref = calc_price(ref_usage, ref_model, provider_id=provider_id)
    assert warm.total_usd is not None
    assert abs(warm.total_usd - float(ref.total_price)) <= 1e-12 * float(ref.total_price)

    def cold() -> object:  # a fresh table: one full resolution through genai-prices, then cost
        return PriceTable(aliases={"prod-gpt4o": "gpt-4o"}).price(call)

    contenders: dict[str, tuple[Callable[[], object], int]] = {
        "noop": (lambda: None, 5_000),
        "price": (lambda: table.price(call), 5_000),
        "price (A/A)": (lambda: table.price(call), 5_000),
        "calc_price": (lambda: calc_price(ref_usage, ref_model, provider_id=provider_id), 200),
        "cold price": (cold, 50),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            fn, n = contenders[name]
            samples[name].append(per_call_us(fn, n))
    result = {name: statistics.median(values) for name, values in samples.items()}
    result["speedup"] = statistics.median(
        c / p for c, p in zip(samples["calc_price"], samples["price"], strict=True)
    )
    result["a/a"] = statistics.median(
        abs(a - b) / b for a, b in zip(samples["price (A/A)"], samples["price"], strict=True)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    rounds = parser.parse_args().rounds
    header = (
        f"{'case':<26}{'price µs':>10}{'A/A diff':>10}{'calc_price µs':>15}{'speedup':>9}"
        f"{'@235 µs':>9}{'cold µs':>9}{'noop µs':>9}"
    )
    print(f"median of {rounds} interleaved rounds; µs per call (warm unless noted)")
    print(header)
    print("-" * len(header))
    worst = worst_scaled = 0.0
    for label, provider, model, provider_id, ref_model, usage in CASES:
        r = bench_case(provider, model, provider_id, ref_model, usage, rounds)
        scaled = REFERENCE_CALC_PRICE_US / r["speedup"]
        worst, worst_scaled = max(worst, r["price"]), max(worst_scaled, scaled)
        print(
            f"{label:<26}{r['price']:>10.2f}{r['a/a']:>9.0%} {r['calc_price']:>15.1f}"
            f"{r['speedup']:>8.0f}x{scaled:>9.2f}{r['cold price']:>9.0f}{r['noop']:>9.3f}"
        )
    verdict = "meets" if worst_scaled <= TARGET_US else "MISSES"
    print(
        f"\nworst warm price(): {worst:.2f} µs as measured; {worst_scaled:.2f} µs scaled to the "
        f"machine state of BENCHMARKS §2 (calc_price = {REFERENCE_CALC_PRICE_US:.0f} µs)"
        f" -> {verdict} the <= {TARGET_US:.0f} µs target"
    )


if __name__ == "__main__":
    main()
