from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm import _runtime


@dataclass
class Harness:
    """Providers wired to in-memory sinks, the way a user wires their own (STYLE.md)."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    telemetry: otel_llm.Telemetry

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self, name: str) -> list[Any]:
        """Data points of metric ``name`` (cumulative), empty when never recorded."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out


def make_harness(sampler: Any = None, **configure_kwargs: Any) -> Harness:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = otel_llm.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        instrument=False,
        **configure_kwargs,
    )
    # The user's own processor, wrapped so foreign GenAI spans get cost (DESIGN.md §8).
    tracer_provider.add_span_processor(
        otel_llm.LLMSpanProcessor(SimpleSpanProcessor(exporter), accountant=telemetry.accountant)
    )
    return Harness(tracer_provider, meter_provider, exporter, reader, telemetry)


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "OTEL_LLM_PRICES"):
        monkeypatch.delenv(name, raising=False)
    h = make_harness()
    yield h
    h.telemetry.shutdown()
    h.tracer_provider.shutdown()
    h.meter_provider.shutdown()
    _runtime.install(None)
