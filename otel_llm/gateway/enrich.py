"""The enrich processor: cost and error attributes added to OTLP GenAI spans, in place.

The gateway's host of the pure core (DESIGN.md §1): for each span of a decoded
``ExportTraceServiceRequest`` that carries GenAI attributes,
:func:`otel_llm.core.normalize.normalize` reads the call, :func:`otel_llm.core.enrich.assess`
prices and classifies it, and the attributes the span lacks are appended as ``KeyValue``
entries. Nothing else is touched: other spans, the span's existing attributes, events, links,
resource and scope stay byte-for-byte the same, and a span that already carries a cost keeps
it. Each call is then accounted once through the :class:`~otel_llm.accounting.Accountant` —
after the next stage accepted the batch, so a request refused for back-pressure and retried by
the client is not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otel_llm.accounting import Accountant
from otel_llm.core.enrich import assess
from otel_llm.core.normalize import normalize
from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import CallRecord
from otel_llm.gateway.component import Batch, Consumer
from otel_llm.gateway.selfmetrics import GatewayMetrics
from otel_llm.gateway.wire import encode_span_attributes

__all__ = ("EnrichProcessor", "enrich_request", "span_attributes")

# Only attributes in these namespaces are converted to Python values for normalize: they cover
# every name it reads (GenAI, OpenInference, OpenLLMetry, OpenLIT, ours, db/server/error), and
# converting the rest (HTTP, user, content-free app attributes) is wasted time on the hot path.
# tests/gateway/test_gateway_enrich.py checks normalize sees the same call either way.
READ_NAMESPACES: Final = (
    "gen_ai.",
    "llm.",
    "otel_llm.",
    "embedding.",
    "openinference.",
    "traceloop.",
    "db.",
    "error.",
    "server.",
    "retrieval.",
    "reranker.",
    "telemetry.",
)
_STATUS_ERROR: Final = Status.STATUS_CODE_ERROR
_SCALARS: Final = frozenset(
    ("string_value", "bool_value", "int_value", "double_value", "bytes_value")
)


class EnrichProcessor:
    """Processor (mutates data): enriches trace batches in place, then hands them on.

    Metrics and logs batches, and every batch when ``enabled`` is false, pass through untouched.
    ``consume`` raises whatever the next consumer raises; calls are accounted only once it
    returned. Thread-safe: it holds no state of its own beyond its collaborators.
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
        self.enabled = enabled

    def start(self) -> None:
        """Nothing to start: the processor is stateless."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def consume(self, batch: Batch) -> None:
        if not self.enabled or batch.signal != "traces" or not batch.items:
            self._next.consume(batch)
            return
        request: ExportTraceServiceRequest = batch.message  # type: ignore[assignment]
        records, changed = enrich_request(request, self._accountant)
        if changed:
            batch.modified = True
        self._next.consume(batch)
        if changed and self._metrics is not None:
            self._metrics.enriched.add(changed)
        account = self._accountant.account
        for record in records:
            account(record)


def enrich_request(
    request: ExportTraceServiceRequest, accountant: Accountant
) -> tuple[list[CallRecord], int]:
    """Enrich every GenAI span of ``request`` in place; return its calls and how many spans changed.

    Never raises: a failure on one span (a bug of ours) is counted and logged once through the
    accountant, and that span is left as it was.
    """
    prices = accountant.prices
    records: list[CallRecord] = []
    changed = 0
    for rs in request.resource_spans:
        resource: dict[str, Any] | None = None
        for ss in rs.scope_spans:
            for span in ss.spans:
                try:
                    attributes = span_attributes(span.attributes)
                    if not attributes:
                        continue
                    if resource is None:
                        resource = span_attributes(rs.resource.attributes, everything=True)
                    record, added = _enrich_span(span, attributes, resource, prices)
                except Exception as exc:  # our bug must not lose the batch: forward the span as is
                    accountant.internal_error("gateway.enrich", exc)
                    continue
                if record is not None:
                    records.append(record)
                changed += added
    return records, changed


def span_attributes(attributes: Iterable[KeyValue], *, everything: bool = False) -> dict[str, Any]:
    """A dict of the OTLP attributes normalize may read (all of them with ``everything``)."""
    out: dict[str, Any] = {}
    for kv in attributes:
        key = kv.key
        if everything or key.startswith(READ_NAMESPACES):
            # Scalars inline: this loop runs for every attribute of every span.
            value = kv.value
            kind = value.WhichOneof("value")
            out[key] = getattr(value, kind) if kind in _SCALARS else _composite(value, kind)
    return out


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
        span.MergeFromString(encode_span_attributes(missing))  # appends, see wire.py
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


def _composite(value: AnyValue, kind: str | None) -> Any:
    """Arrays as tuples (as the SDK holds them); maps and unset values as None."""
    if kind != "array_value":
        return None
    return tuple(
        getattr(item, k) if (k := item.WhichOneof("value")) in _SCALARS else _composite(item, k)
        for item in value.array_value.values
    )
