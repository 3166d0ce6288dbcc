"""The enrich processor: cost and error attributes added to OTLP GenAI spans, in place.

The gateway's host of the pure core (DESIGN.md §1): for each span of an
``ExportTraceServiceRequest`` that carries GenAI attributes,
:func:`otel_llm.core.normalize.normalize` reads the call, :func:`otel_llm.core.enrich.assess`
prices and classifies it, and the attributes the span lacks are appended as ``KeyValue``
entries. The request is handled in its wire view (:mod:`otel_llm.gateway.wire`): only the
attributes normalize reads are decoded, and re-encoding it gives back the bytes received plus
the appended entries. Nothing else is touched: other spans, the span's existing attributes,
events, links, resource and scope stay byte-for-byte the same, and a span that already carries
a cost keeps it. Each call is then accounted once through the
:class:`~otel_llm.accounting.Accountant` — after the next stage accepted the batch, so a request
refused for back-pressure and retried by the client is not counted twice.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otel_llm.accounting import Accountant
from otel_llm.core.enrich import assess
from otel_llm.core.normalize import is_genai, normalize
from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import CallRecord
from otel_llm.gateway.component import Batch, Consumer
from otel_llm.gateway.selfmetrics import GatewayMetrics
from otel_llm.gateway.wire import AttributeReader, TraceRequest, any_value, encode_span_attributes

__all__ = ("EnrichProcessor", "Enrichment", "enrich_request")

_STATUS_ERROR: Final = Status.STATUS_CODE_ERROR


class Enrichment(NamedTuple):
    payload: bytes | None
    """The request re-encoded with the added attributes; None when no span changed."""
    records: list[CallRecord]
    """The calls the request describes, to account once it is accepted."""
    changed: int
    """Spans that got attributes."""


class EnrichProcessor:
    """Processor (mutates data): enriches trace batches, then hands them on.

    Metrics and logs batches, and every batch when ``enabled`` is false, pass through untouched.
    ``consume`` raises whatever the next consumer raises; calls are accounted only once it
    returned. Thread-safe: its one piece of state, the attribute reader's memo, is.
    """

    def __init__(
        self,
        next_consumer: Consumer,
        accountant: Accountant,
        *,
        enabled: bool = True,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._next = next_consumer
        self._accountant = accountant
        self._metrics = metrics
        self._reader = AttributeReader()
        self.enabled = enabled

    def start(self) -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def consume(self, batch: Batch) -> None:
        if not self.enabled or batch.signal != "traces" or not batch.items:
            self._next.consume(batch)
            return
        result = enrich_request(batch.encoded(), self._accountant, self._reader)
        if result.payload is not None:
            batch.replace_payload(result.payload)
        self._next.consume(batch)
        if result.changed and self._metrics is not None:
            self._metrics.enriched.add(result.changed)
        account = self._accountant.account
        for record in result.records:
            account(record)


def enrich_request(
    payload: bytes, accountant: Accountant, reader: AttributeReader | None = None
) -> Enrichment:
    """Enrich every GenAI span of the encoded ``ExportTraceServiceRequest`` ``payload``.

    Never raises on a request the receivers accepted: a failure on one span (a bug of ours) is
    counted and logged once through the accountant, and that span is left as it was.
    """
    try:
        request: Any = TraceRequest.FromString(payload)
    except Exception as exc:  # the receivers parsed it with the full schema: a bug of ours
        accountant.internal_error("gateway.enrich", exc)
        return Enrichment(None, [], 0)  # forwarded as received, unenriched
    read = (reader or AttributeReader()).read
    prices = accountant.prices
    records: list[CallRecord] = []
    changed = 0
    for rs in request.resource_spans:
        resource: dict[str, Any] | None = None
        for ss in rs.scope_spans:
            for span in ss.spans:
                try:
                    attributes = read(span.attributes)
                    if not is_genai(attributes):
                        continue  # most spans: nothing more to read
                    if resource is None:
                        resource = _resource_attributes(rs.resource)
                    record, added = _enrich_span(span, attributes, resource, prices)
                except Exception as exc:  # our bug must not lose the batch: forward the span as is
                    accountant.internal_error("gateway.enrich", exc)
                    continue
                if record is not None:
                    records.append(record)
                changed += added
    return Enrichment(request.SerializeToString() if changed else None, records, changed)


def _resource_attributes(encoded: bytes) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in Resource.FromString(encoded).attributes}


def _enrich_span(
    span: Any, attributes: dict[str, Any], resource: dict[str, Any], prices: PriceTable
) -> tuple[CallRecord | None, int]:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    call = normalize(
        attributes,
        span_name=span.name,
        duration_s=(end - start) / 1e9 if start and end >= start else None,
        status_is_error=span.status.code == _STATUS_ERROR,
        resource=resource,
    )
    if call is None:
        return None, 0
    assessment = assess(call, prices)
    missing = [(k, v) for k, v in assessment.attributes.items() if k not in attributes]
    if missing:
        span.MergeFromString(encode_span_attributes(missing))
    service = resource.get("service.name")
    record = CallRecord(
        call=call,
        cost=assessment.cost,
        error=assessment.error,
        end_time_s=end / 1e9,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        service=service if isinstance(service, str) else None,
    )
    return record, 1 if missing else 0
