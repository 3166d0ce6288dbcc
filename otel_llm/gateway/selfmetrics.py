"""The gateway's own health metrics (beside the §3 GenAI metrics the accountant records).

Prometheus names (after the exporter's translation): ``otel_llm_gateway_received_total``,
``otel_llm_gateway_forwarded_total``, ``otel_llm_gateway_dropped_total{reason}``,
``otel_llm_gateway_refused_requests_total{reason}``, ``otel_llm_gateway_enriched_spans_total``,
``otel_llm_gateway_queue_size`` / ``otel_llm_gateway_queue_capacity`` (read at scrape time) and
``otel_llm_gateway_export_duration_seconds{outcome}``. Item counts are spans, metric data points
or log records, labelled by ``signal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_llm.version import __version__

__all__ = ("GatewayMetrics",)

# Export latencies span loopback (sub-millisecond) to a slow remote collector.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Instruments of one gateway. ``queue_size``/``queue_capacity`` are read when scraped."""

    def __init__(
        self,
        meter_provider: MeterProvider,
        *,
        queue_size: Callable[[], int] | None = None,
        queue_capacity: int = 0,
    ) -> None:
        meter = meter_provider.get_meter("otel_llm.gateway", __version__)
        self.received = meter.create_counter(
            "otel_llm.gateway.received",
            unit="{item}",
            description="Spans, data points and log records accepted from clients.",
        )
        self.forwarded = meter.create_counter(
            "otel_llm.gateway.forwarded",
            unit="{item}",
            description="Items delivered to the downstream endpoint.",
        )
        self.dropped = meter.create_counter(
            "otel_llm.gateway.dropped",
            unit="{item}",
            description="Items not delivered, by reason (invalid ids, downstream refusal, "
            "shutdown deadline).",
        )
        self.refused = meter.create_counter(
            "otel_llm.gateway.refused_requests",
            unit="{request}",
            description="Requests answered with an error (bad input, auth, queue full), by reason.",
        )
        self.enriched = meter.create_counter(
            "otel_llm.gateway.enriched_spans",
            unit="{span}",
            description="Spans to which cost or error attributes were added.",
        )
        self.export_duration = meter.create_histogram(
            "otel_llm.gateway.export.duration",
            unit="s",
            description="Duration of one export attempt to the downstream, by outcome.",
            explicit_bucket_boundaries_advisory=list(_LATENCY_BUCKETS),
        )
        if queue_size is not None:
            size = queue_size

            def observe_size(_options: CallbackOptions) -> Iterable[Observation]:
                return (Observation(size()),)

            def observe_capacity(_options: CallbackOptions) -> Iterable[Observation]:
                return (Observation(queue_capacity),)

            meter.create_observable_gauge(
                "otel_llm.gateway.queue.size",
                callbacks=[observe_size],
                unit="{item}",
                description="Items waiting in the export queue or being exported.",
            )
            meter.create_observable_gauge(
                "otel_llm.gateway.queue.capacity",
                callbacks=[observe_capacity],
                unit="{item}",
                description="The export queue's bound (--queue-size).",
            )
