"""The benchmarks still run: one tiny round each, checking they finish and print their table.

Not a timed test: nothing here looks at a figure. It keeps bench/ from rotting when the code it
drives changes (the README quotes these tables).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNS = {
    "bench_hooks.py": (["--rounds", "1", "--calls", "5"], "× span+metrics"),
    "bench_pricing.py": (["--rounds", "1"], "calc_price"),
    "bench_gateway.py": (["--rounds", "1", "--seconds", "0.2"], "enrich / pass-through"),
    "bench_openai_overhead.py": (["--rounds", "2", "--calls", "1"], "span_metrics"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs(script: str) -> None:
    args, expected = RUNS[script]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTEL_LLM_"))}
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", script), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout, done.stdout[-2000:]


def test_openai_bench_statistic_cancels_the_order_effect() -> None:
    """Rounds alternate which block runs first, and a first block runs colder, so single-round
    differences are bimodal and their median is set by the modes' inner tails, the noisiest
    rounds. Averaging each pair of rounds (one of each order) first removes the order effect."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_openai_overhead as bench
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    # True overhead 10 µs; whichever block runs first pays 30 µs more; one round is disturbed.
    rounds = [{"cont": 110.0 + 30, "base": 100.0} if r % 2 == 0 else
              {"cont": 110.0, "base": 100.0 + 30} for r in range(40)]
    rounds[1]["cont"] += 25
    single = sorted(r["cont"] - r["base"] for r in rounds)
    assert (single[19] + single[20]) / 2 == 22.5  # the naive median is dragged off
    assert bench._median_diff(rounds, rounds) == 10.0
    odd = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_openai_overhead.py"),
                          "--rounds", "3"], capture_output=True, text=True, timeout=60)
    assert odd.returncode == 2 and "even number" in odd.stderr
