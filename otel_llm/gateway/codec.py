"""OTLP request bodies to messages and back: decompression, protobuf, OTLP/JSON, validation.

Pure functions, no I/O. Every failure is an :class:`InvalidRequest` carrying the metric reason and
the HTTP status a receiver should answer (gRPC receivers answer INVALID_ARGUMENT for all of them):

- ``too_large`` (413): the body, or what it decompresses to, exceeds the limit — a gzip bomb is
  stopped after ``limit + 1`` bytes of output, never inflated whole;
- ``unsupported_encoding`` (415), ``invalid_compression`` (400);
- ``invalid_protobuf`` (400): truncated or garbage bytes, invalid UTF-8 in a string field;
- ``invalid_json`` (400): not JSON, not UTF-8, not an object, not the OTLP shape, a bad hex id.

OTLP/JSON differs from protobuf's canonical JSON mapping in one place: trace and span ids are hex
strings, not base64. They are converted before parsing. Enums as integers, 64-bit integers as
strings or numbers, lowerCamelCase or snake_case keys are all accepted; unknown fields are ignored,
as the OTLP specification requires of receivers.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otel_llm.gateway.component import InvalidRequest, Signal

__all__ = (
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "decompress",
    "decode_protobuf",
    "decode_json",
    "count_items",
    "drop_invalid_spans",
    "response",
)

REQUEST_TYPES: Final[dict[Signal, type[Message]]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
RESPONSE_TYPES: Final[dict[Signal, type[Message]]] = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}
# The partial_success counter of each response type.
_REJECTED_FIELD: Final[dict[Signal, str]] = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}
_ID_FIELDS: Final = frozenset(
    ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
)
_CHUNK: Final = 64 * 1024


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decoded per its Content-Encoding, refusing more than ``limit`` bytes either way."""
    if len(body) > limit:
        raise _too_large(len(body), limit)
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif name == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise InvalidRequest(
            f"unsupported Content-Encoding {encoding!r} (use gzip or none)",
            reason="unsupported_encoding",
            http_status=415,
        )
    inflater = zlib.decompressobj(wbits)
    parts: list[bytes] = []
    size = 0
    data = body
    try:
        # Inflate in bounded steps so a bomb costs at most limit + one chunk of memory.
        while True:
            part = inflater.decompress(data, _CHUNK)
            size += len(part)
            if size > limit:
                raise _too_large(size, limit, decompressed=True)
            parts.append(part)
            data = inflater.unconsumed_tail
            if not data:
                break
        tail = inflater.flush()
    except zlib.error as exc:
        raise InvalidRequest(
            f"body is not valid {name} data: {exc}", reason="invalid_compression"
        ) from None
    if size + len(tail) > limit:
        raise _too_large(size + len(tail), limit, decompressed=True)
    if not inflater.eof:
        raise InvalidRequest(f"truncated {name} body", reason="invalid_compression")
    parts.append(tail)
    return b"".join(parts)


def decode_protobuf(signal: Signal, data: bytes) -> Message:
    """The export request of ``signal`` encoded in ``data``; unknown fields are kept."""
    try:
        return REQUEST_TYPES[signal].FromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise InvalidRequest(
            f"body is not a valid OTLP {signal} protobuf request: {_short(exc)}",
            reason="invalid_protobuf",
        ) from None


def decode_json(signal: Signal, data: bytes) -> Message:
    """The export request of ``signal`` in OTLP/JSON (hex ids) in ``data``."""
    try:
        document = json.loads(data.decode("utf-8"))
        if not isinstance(document, dict):
            raise ValueError("the body must be a JSON object")
        _hex_ids_to_base64(document)
        message = REQUEST_TYPES[signal]()
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (ValueError, TypeError, RecursionError, json_format.ParseError) as exc:
        # UnicodeDecodeError and json.JSONDecodeError are ValueErrors.
        raise InvalidRequest(
            f"body is not a valid OTLP/JSON {signal} request: {_short(exc)}",
            reason="invalid_json",
        ) from None
    return message


def count_items(signal: Signal, message: Message) -> int:
    """Spans, metric data points or log records in a request: the queue's unit."""
    if signal == "traces":
        traces: Any = message
        return sum(len(ss.spans) for rs in traces.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        logs: Any = message
        return sum(len(sl.log_records) for rl in logs.resource_logs for sl in rl.scope_logs)
    metrics: Any = message
    points = 0
    for rm in metrics.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                points += len(getattr(metric, kind).data_points) if kind else 0
    return points


def drop_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, int]:
    """Remove spans whose ids are malformed; return ``(kept, rejected)``.

    A trace id must be 16 bytes and a span id 8, neither all zero; a parent span id is empty or
    8 bytes (OTLP trace.proto). Backends refuse such spans, so they are reported back to the
    client as rejected (partial success) instead of being forwarded.
    """
    kept = rejected = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad = [i for i, span in enumerate(spans) if not _valid_ids(span)]
            for i in reversed(bad):
                del spans[i]
            rejected += len(bad)
            kept += len(spans)
    return kept, rejected


def response(signal: Signal, rejected: int = 0, message: str = "") -> Message:
    """The export response for ``signal``, with ``partial_success`` set when items were rejected."""
    reply = RESPONSE_TYPES[signal]()
    if rejected or message:
        partial = reply.partial_success  # type: ignore[attr-defined]
        setattr(partial, _REJECTED_FIELD[signal], rejected)
        partial.error_message = message
    return reply


_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)


def _valid_ids(span: Any) -> bool:
    trace_id: bytes = span.trace_id
    span_id: bytes = span.span_id
    parent: bytes = span.parent_span_id
    return (
        len(trace_id) == 16
        and trace_id != _ZERO_TRACE
        and len(span_id) == 8
        and span_id != _ZERO_SPAN
        and len(parent) in (0, 8)
    )


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON parser wants base64: convert in place."""
    stack = [node]
    while stack:  # iterative: a deeply nested body must not exhaust the Python stack
        current = stack.pop()
        items = current.items() if isinstance(current, dict) else enumerate(current)
        for key, value in items:
            if isinstance(value, str) and key in _ID_FIELDS:
                current[key] = _hex_to_base64(value)
            elif isinstance(value, dict | list):
                stack.append(value)


def _hex_to_base64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(
            f"trace/span ids must be hex strings in OTLP/JSON, got {value[:40]!r}"
        ) from None
    return base64.b64encode(raw).decode("ascii")


def _too_large(size: int, limit: int, *, decompressed: bool = False) -> InvalidRequest:
    what = "decompressed body" if decompressed else "body"
    more = "more than " if decompressed else ""
    return InvalidRequest(
        f"{what} of {more}{size} bytes exceeds the limit of {limit} bytes",
        reason="too_large",
        http_status=413,
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
