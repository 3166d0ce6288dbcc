"""Per-call cost of an ``llm_call`` hook against hand-written floors (BENCHMARKS.md §1, hooks).

Contenders run in one process, in many short interleaved rounds; we report the median per-call
time of each and its ratio to the floors. Run: ``python bench/bench_hooks.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm import semconv as sc


def setup() -> tuple[TracerProvider, MeterProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel_llm.configure(tracer_provider=tracer_provider, meter_provider=meter_provider,
                       instrument=False)
    tracer_provider.add_span_processor(otel_llm.LLMSpanProcessor(SimpleSpanProcessor(exporter)))
    return tracer_provider, meter_provider, exporter


def contenders(exporter: InMemorySpanExporter) -> dict[str, Callable[[], None]]:
    # The floors get a provider of their own with the same exporter and no LLMSpanProcessor:
    # they must not pay for our enrichment of foreign GenAI spans.
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = tp.get_tracer("bench.floor")
    meter = mp.get_meter("bench.floor")
    duration = meter.create_histogram(sc.METRIC_OPERATION_DURATION, unit="s",
                                      explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS))
    tokens = meter.create_histogram(sc.METRIC_TOKEN_USAGE, unit="{token}",
                                    explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS))

    def attrs() -> dict[str, object]:
        return {
            sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            sc.GEN_AI_RESPONSE_ID: "chatcmpl-1", sc.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1200, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
        }

    def span_floor() -> None:
        with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
            span.set_attributes(attrs())  # type: ignore[arg-type]

    def span_metrics_floor() -> None:
        start = time.perf_counter()
        with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
            span.set_attributes(attrs())  # type: ignore[arg-type]
        base = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06"}
        duration.record(time.perf_counter() - start, base)
        tokens.record(1200, {**base, sc.GEN_AI_TOKEN_TYPE: "input"})
        tokens.record(300, {**base, sc.GEN_AI_TOKEN_TYPE: "output"})

    def ours() -> None:
        with otel_llm.llm_call("openai", "gpt-4o") as call:
            call.record_usage(input_tokens=1200, output_tokens=300, cached_input_tokens=1000)
            call.set_response(model="gpt-4o-2024-08-06", finish_reasons=["stop"],
                              response_id="chatcmpl-1")

    return {"span floor": span_floor, "span+metrics floor": span_metrics_floor,
            "otel_llm.llm_call": ours}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    _tp, _mp, exporter = setup()
    fns = contenders(exporter)
    for fn in fns.values():  # warm caches (price lookup, instruments)
        for _ in range(200):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            exporter.clear()
            start = time.perf_counter_ns()
            for _ in range(args.calls):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / args.calls / 1000)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    floor = medians["span floor"]
    floor_m = medians["span+metrics floor"]
    print(f"{'contender':<22}{'µs/call':>10}{'× span floor':>15}{'× span+metrics':>17}")
    for name, value in medians.items():
        print(f"{name:<22}{value:>10.1f}{value / floor:>15.2f}{value / floor_m:>17.2f}")
    print(f"\n{args.rounds} interleaved rounds × {args.calls} calls; medians. "
          "Target: llm_call ≤ 1.3× span+metrics floor.")


if __name__ == "__main__":
    main()
