"""`otel-llm demo` end to end, as a newcomer runs it: a subprocess, no network but loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from otel_llm.demo.workload import fault_for


def test_faults_are_deterministic_and_a_minority() -> None:
    faults = [fault_for(i) for i in range(300)]
    assert faults == [fault_for(i) for i in range(300)]
    assert {"rate_limit", "timeout", "context_length"} <= set(faults)
    assert 0.1 < sum(f is not None for f in faults) / len(faults) < 0.3


def test_demo_runs_to_a_summary_with_cost_and_a_fired_alert(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-m", "otel_llm.cli", "demo", "--duration", "10", "--rate", "6"],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
        cwd=tmp_path,  # the embedded gateway's call store (otel-llm.db) lands here
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    total = re.search(r"^total\s+(\d+)\s+(\d+)\s+([\d.]+)$", out, re.MULTILINE)
    assert total is not None, out
    calls, tokens, cost = int(total[1]), int(total[2]), float(total[3])
    assert calls > 100 and tokens > 0 and cost > 0
    for category in ("resource_error", "external_service", "validation"):
        assert category in out
    assert "alerts that fired:" in out
    assert re.search(r"trace [0-9a-f]{32}", out)
    assert "sk-demo" not in out + done.stderr  # the API key never shows
    # The embedded gateway's store, read back through its API, holds the run's calls.
    recorded = re.search(r"the gateway recorded (\d+) calls, \$([\d.]+)", out)
    assert recorded is not None, out
    assert int(recorded[1]) > 100 and float(recorded[2]) > 0
    assert (tmp_path / "otel-llm.db").exists()
