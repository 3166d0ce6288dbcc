"""Exporters: forward encoded OTLP requests downstream over gRPC or HTTP, with retry.

A :class:`Sender` makes one attempt and says how it went: it returns the number of items the
downstream rejected in a partial success, or raises :class:`RetryableError` (UNAVAILABLE,
RESOURCE_EXHAUSTED with RetryInfo, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS;
HTTP 429/502/503/504; connection failures) or :class:`PermanentError` (anything else: the request
will never be accepted). The bytes sent are the request as stored in the queue: no SDK objects,
no re-encoding. :class:`Forwarder` (in :mod:`otel_llm.gateway.forwarder`) owns the retry loop.
"""

from __future__ import annotations

import email.utils
import time
from typing import Final, Protocol
from urllib.parse import urlsplit

import grpc
import httpx
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from otel_llm.gateway.codec import RESPONSE_TYPES
from otel_llm.gateway.component import PermanentError, RetryableError, Signal

__all__ = ("Sender", "GrpcSender", "HttpSender", "make_sender", "GRPC_METHODS", "HTTP_PATHS")

GRPC_METHODS: Final[dict[Signal, str]] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
HTTP_PATHS: Final[dict[Signal, str]] = {
    "traces": "/v1/traces",
    "metrics": "/v1/metrics",
    "logs": "/v1/logs",
}
# OTLP specification, "Failures": the codes a client may retry.
_RETRYABLE_GRPC: Final = frozenset(
    (
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    )
)
_RETRYABLE_HTTP: Final = frozenset((429, 502, 503, 504))
_REJECTED_FIELD: Final[dict[Signal, str]] = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}


class Sender(Protocol):
    """One export attempt to the downstream. Thread-safe; ``close()`` is idempotent."""

    endpoint: str

    def send(self, signal: Signal, payload: bytes, timeout: float) -> int: ...
    def close(self) -> None: ...


class GrpcSender:
    """OTLP/gRPC client: ``http://host:port`` is plaintext, ``https://host:port`` TLS."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--forward must be an http:// or https:// URL, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 4317)
        self.endpoint = f"{parts.hostname}:{port}"
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if parts.scheme == "https":
            credentials = grpc.ssl_channel_credentials()
            self._channel = grpc.secure_channel(self.endpoint, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.endpoint, options=options)
        # No (de)serializers: the payload goes out as the bytes we hold.
        self._calls = {
            signal: self._channel.unary_unary(
                method, request_serializer=None, response_deserializer=None
            )
            for signal, method in GRPC_METHODS.items()
        }

    def send(self, signal: Signal, payload: bytes, timeout: float) -> int:
        try:
            reply: bytes = self._calls[signal](payload, timeout=timeout)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            details = f"{code.name}: {error.details()}"
            delay = _retry_info(error)
            if code in _RETRYABLE_GRPC or (
                code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
            ):
                raise RetryableError(
                    details, reason=code.name.lower(), retry_after_s=delay
                ) from None
            raise PermanentError(details, reason=f"downstream_{code.name.lower()}") from None
        return _rejected(signal, reply)

    def close(self) -> None:
        self._channel.close()


class HttpSender:
    """OTLP/HTTP protobuf client: ``url`` is a base URL; ``/v1/<signal>`` is appended."""

    def __init__(self, url: str, *, client: httpx.Client | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--forward must be an http:// or https:// URL, got {url!r}")
        self.endpoint = url.rstrip("/")
        self._client = client or httpx.Client()

    def send(self, signal: Signal, payload: bytes, timeout: float) -> int:
        try:
            reply = self._client.post(
                self.endpoint + HTTP_PATHS[signal],
                content=payload,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=timeout,
            )
        except httpx.TransportError as exc:  # refused, reset, timed out: the downstream is away
            raise RetryableError(f"{type(exc).__name__}: {exc}", reason="unavailable") from None
        status = reply.status_code
        if 200 <= status < 300:
            return _rejected(signal, reply.content)
        details = f"HTTP {status}: {reply.text[:200]}"
        if status in _RETRYABLE_HTTP:
            raise RetryableError(
                details,
                reason=f"http_{status}",
                retry_after_s=_retry_after(reply.headers.get("Retry-After")),
            )
        raise PermanentError(details, reason=f"downstream_http_{status}")

    def close(self) -> None:
        self._client.close()


def make_sender(url: str, protocol: str) -> Sender:
    """The sender for ``--forward URL`` and ``--forward-protocol``."""
    if protocol == "grpc":
        return GrpcSender(url)
    if protocol == "http/protobuf":
        return HttpSender(url)
    raise ValueError(f"--forward-protocol must be grpc or http/protobuf, got {protocol!r}")


def _rejected(signal: Signal, reply: bytes) -> int:
    """Items the downstream reported rejected in a partial success (0 when unreadable)."""
    if not reply:
        return 0
    try:
        response = RESPONSE_TYPES[signal].FromString(reply)
    except DecodeError:
        return 0  # a non-OTLP body on success (some proxies): nothing to learn from it
    if not response.HasField("partial_success"):
        return 0
    return int(getattr(response.partial_success, _REJECTED_FIELD[signal]))  # type: ignore[attr-defined]


def _retry_info(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay a gRPC error carries, in the status details or the SDK's own header."""
    try:
        trailers = error.trailing_metadata() or ()
    except AttributeError:  # an RpcError that is not a call carries no metadata
        return None
    for datum in trailers:
        key, value = datum.key, datum.value
        try:
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                        info = error_details_pb2.RetryInfo()
                        detail.Unpack(info)
                        return float(info.retry_delay.ToTimedelta().total_seconds())
            elif key == "google.rpc.retryinfo-bin":
                info = error_details_pb2.RetryInfo.FromString(value)
                return float(info.retry_delay.ToTimedelta().total_seconds())
        except (DecodeError, TypeError, ValueError):
            continue  # a malformed hint is no hint
    return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
