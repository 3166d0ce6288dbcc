"""Zero-code: ``opentelemetry-instrument python app.py`` exports our spans, with cost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_llm import semconv as sc
from tests.instrumentation.llm_fakes import GPT
from tests.otlp_sink import HttpSink, attributes
from tests.pricing_oracle import genai_prices_cost

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

APP = """
from tests.instrumentation.llm_fakes import OpenAIServer, openai_client

client = openai_client(OpenAIServer())
messages = [{"role": "user", "content": "hi"}]
client.chat.completions.create(model="gpt-4o", messages=messages)
chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
assert all(chunk.choices for chunk in chunks)
print("app done")
"""


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    server = HttpSink()
    yield server
    server.close()


def run_app(tmp_path: Path, endpoint: str, **env: str) -> None:
    if not INSTRUMENT.exists():
        pytest.skip("opentelemetry-instrument is not installed in this environment")
    app = tmp_path / "app.py"
    app.write_text(APP)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OTEL_", "ANTHROPIC_", "OPENAI_"))}
    clean.update({"PYTHONPATH": str(ROOT), "OTEL_SERVICE_NAME": "zero-code-app",
                  "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                  "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **env})
    done = subprocess.run([str(INSTRUMENT), sys.executable, str(app)], env=clean, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "app done" in done.stdout


def test_spans_with_cost_are_exported(tmp_path: Path, sink: HttpSink) -> None:
    run_app(tmp_path, sink.endpoint, OTEL_PYTHON_CONFIGURATOR="otel_llm")
    spans = [s for s in sink.wait_for(2) if s.name == "chat gpt-4o"]
    assert len(spans) == 2
    expected = genai_prices_cost(GPT, "openai", input_tokens=1200, output_tokens=300,
                                 cache_read_tokens=1000)
    for span in spans:
        attrs = attributes(span)
        assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
        assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    service = {kv.value.string_value for r in sink.requests for rs in r.resource_spans
               for kv in rs.resource.attributes if kv.key == "service.name"}
    assert service == {"zero-code-app"}


def test_disabled_instrumentation_is_switched_off(tmp_path: Path, sink: HttpSink) -> None:
    run_app(tmp_path, sink.endpoint, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="otel_llm_openai")
    # The app has exited, so anything it would export has been sent.
    assert list(sink.spans()) == []
