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
