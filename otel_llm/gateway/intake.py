"""What both receivers do with a decoded request: validate, count, hand on, answer.

The transport-specific parts (reading bodies, statuses, auth) live in the receivers; this is
the shared middle, so gRPC and HTTP cannot drift in what they accept, count or reply.
"""

from __future__ import annotations

from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_llm.gateway.codec import count_items, drop_invalid_spans, response
from otel_llm.gateway.component import Batch, Consumer, Signal
from otel_llm.gateway.selfmetrics import GatewayMetrics

__all__ = ("Intake",)


class Intake:
    """Turns a decoded request into a :class:`Batch` for the pipeline's first consumer.

    ``accept`` returns the export response (with ``partial_success`` when spans with malformed ids
    were removed) or raises the :class:`~otel_llm.gateway.component.ConsumerError` of the
    pipeline; ``refused`` counts a request a receiver answered with an error.
    """

    def __init__(self, consumer: Consumer, metrics: GatewayMetrics) -> None:
        self._consumer = consumer
        self._metrics = metrics

    def accept(
        self, signal: Signal, message: Message, payload: bytes | None, transport: str
    ) -> Message:
        rejected = 0
        if signal == "traces":
            request: ExportTraceServiceRequest = message  # type: ignore[assignment]
            items, rejected = drop_invalid_spans(request)
        else:
            items = count_items(signal, message)
        batch = Batch(signal, message, items, payload, modified=bool(rejected), transport=transport)
        self._consumer.consume(batch)
        attrs = {"signal": signal, "transport": transport}
        if items:
            self._metrics.received.add(items, attrs)
        if not rejected:
            return response(signal)
        self._metrics.dropped.add(rejected, {"signal": signal, "reason": "invalid_span_id"})
        return response(
            signal,
            rejected,
            f"{rejected} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, "
            "not all zero; parent_span_id empty or 8 bytes",
        )

    def refused(self, reason: str, transport: str) -> None:
        self._metrics.refused.add(1, {"reason": reason, "transport": transport})
