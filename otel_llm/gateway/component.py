"""The shapes every gateway component shares: a batch, the consumer protocol, and errors.

Copied from the OpenTelemetry Collector's design, in Python:

- a **component** has ``start()`` and ``shutdown()``; ``shutdown()`` is safe to call twice and
  without ``start()``;
- each stage hands its output to the next through one tiny interface, :class:`Consumer`, whose
  single method ``consume(batch)`` either returns (the batch is accepted: from then on the gateway
  owns it) or raises a :class:`ConsumerError` that says whether the sender may retry;
- a :class:`Batch` is one decoded OTLP export request. Processors that mutate it say so
  (:attr:`Batch.modified`), so an unmodified request is forwarded as the very bytes received.
"""

from __future__ import annotations

from typing import Literal, Protocol

from google.protobuf.message import Message

__all__ = (
    "Signal",
    "SIGNALS",
    "Batch",
    "Consumer",
    "Component",
    "ConsumerError",
    "RetryableError",
    "PermanentError",
    "InvalidRequest",
)

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")


class Batch:
    """One OTLP export request flowing through the pipeline.

    ``items`` counts spans, metric data points or log records: the unit the queue is bounded in.
    ``message`` is the decoded request; processors may edit it in place and then set
    ``modified``. ``payload`` is the protobuf encoding as received (None when the request came
    as JSON): it is reused as is unless the message was modified. A processor that edits the
    encoding itself hands the result to :meth:`replace_payload`.
    """

    __slots__ = ("_message", "_message_type", "items", "modified", "payload", "signal",
                 "transport")

    def __init__(
        self,
        signal: Signal,
        message: Message,
        items: int,
        payload: bytes | None = None,
        modified: bool = False,
        transport: str = "",
    ) -> None:
        self.signal = signal
        self._message: Message | None = message
        self._message_type = type(message)
        self.items = items
        self.payload = payload
        self.modified = modified
        self.transport = transport

    @property
    def message(self) -> Message:
        if self._message is None:  # the payload was replaced: decode it again, on demand
            assert self.payload is not None
            self._message = self._message_type.FromString(self.payload)
        return self._message

    def encoded(self) -> bytes:
        """The protobuf bytes to forward: the received bytes when nothing changed them."""
        if self.payload is None or self.modified:
            self.payload = self.message.SerializeToString()
            self.modified = False
        return self.payload

    def replace_payload(self, payload: bytes) -> None:
        """Make ``payload`` (the request, re-encoded with edits) what is forwarded."""
        self.payload = payload
        self.modified = False
        self._message = None


class Consumer(Protocol):
    """The one interface between stages: accept a batch or raise :class:`ConsumerError`.

    Called concurrently from receiver threads; implementations are thread-safe. Returning means
    the batch is acknowledged: the gateway now answers for its delivery.
    """

    def consume(self, batch: Batch) -> None: ...


class Component(Protocol):
    """Anything with a lifecycle. ``shutdown()`` is idempotent and safe without ``start()``."""

    def start(self) -> None: ...

    def shutdown(self) -> None: ...


class ConsumerError(Exception):
    """A batch was not accepted. ``reason`` is a short label used in metrics."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RetryableError(ConsumerError):
    """Not accepted now; the same batch may succeed later (``retry_after_s`` is a hint)."""

    reason = "retryable"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s


class PermanentError(ConsumerError):
    """Never accepted, however often retried."""

    reason = "permanent"


class InvalidRequest(PermanentError):
    """The request itself is bad. ``http_status`` is 400, 413 or 415."""

    reason = "invalid"

    def __init__(self, message: str, *, reason: str, http_status: int = 400) -> None:
        super().__init__(message, reason=reason)
        self.http_status = http_status


def host_port(host: str, port: int) -> str:
    """``host:port`` as a listener prints it (IPv6 hosts in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
