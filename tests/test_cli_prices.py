"""``otel-llm prices MODEL``: what a user sees for a known, an unknown and an overridden model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import genai_prices
import pytest

from otel_llm.cli import main

_ROOT = Path(__file__).resolve().parents[1]


def test_prices_known_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "gpt-4o"]) == 0
    out = capsys.readouterr().out
    assert "model:     gpt-4o" in out and "provider:  openai" in out
    assert f"source:    genai-prices {genai_prices.__version__}" in out
    assert "input        $2.5" in out and "output       $10" in out


def test_prices_unknown_model_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "no-such-model-xyz", "--provider", "openai"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown model: no-such-model-xyz" in captured.err


def test_prices_with_override_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - {model: my-llm, provider: vllm, input: 0.1, output: 0.2}\n")
    assert main(["prices", "my-llm", "--provider", "vllm", "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert f"override file {prices}" in out and "input        $0.1" in out


def test_prices_with_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - {model: x, input: -1, output: 0}\n")
    assert main(["prices", "x", "--prices", str(prices)]) == 2
    assert f"{prices}: models[0].input" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "prices" in capsys.readouterr().err


def test_python_dash_m() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_llm.cli",
            "prices",
            "claude-sonnet-4-5",
            "--provider",
            "anthropic",
        ],
        capture_output=True,
        text=True,
        cwd=_ROOT,  # -m puts the working directory first on sys.path: this checkout is imported
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "above 200,000 input tokens" in done.stdout
