"""Queues, senders and the forwarder's retry loop, without receivers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm.gateway.component import PermanentError, RetryableError
from otel_llm.gateway.exporter import GrpcSender, HttpSender, _retry_after, make_sender
from otel_llm.gateway.forwarder import Backoff, Forwarder
from otel_llm.gateway.queue import MemoryQueue, QueueFull, SqliteQueue
from otel_llm.gateway.selfmetrics import GatewayMetrics
from tests.gateway.gateway_support import RawGrpcSink, RawHttpSink, llm_request, wait_until


@pytest.fixture
def metrics() -> Iterator[tuple[GatewayMetrics, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield GatewayMetrics(provider), reader
    provider.shutdown()


def _sum(reader: InMemoryMetricReader, name: str, **attrs: str) -> float:
    data = reader.get_metrics_data()
    total = 0.0
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        if all(point.attributes.get(k) == v for k, v in attrs.items()):
                            total += point.value if hasattr(point, "value") else point.count
    return total


def test_memory_queue_is_bounded_in_items() -> None:
    queue = MemoryQueue(10, retry_after_s=2.0)
    queue.put("traces", 25, b"a")  # larger than the whole queue, but the queue is empty
    with pytest.raises(QueueFull) as info:
        queue.put("traces", 1, b"b")
    assert info.value.retry_after_s == 2.0
    item = queue.get(0.1)
    assert item is not None and item.items == 25
    assert queue.size() == 25  # still counted while being exported
    queue.done(item)
    queue.put("traces", 6, b"c")
    queue.put("logs", 4, b"d")
    assert not queue.has_room(1)
    assert queue.get(0) is not None and queue.pending() == 4
    queue.close()
    with pytest.raises(RetryableError):
        queue.put("traces", 1, b"e")


def test_sqlite_queue_survives_reopen_and_is_exclusive(tmp_path: Any) -> None:
    directory = str(tmp_path / "q")
    queue = SqliteQueue(directory, 100)
    queue.put("traces", 3, b"one")
    queue.put("metrics", 4, b"two")
    with pytest.raises(ValueError, match="in use"):
        SqliteQueue(directory, 100)
    first = queue.get(0.1)
    assert first is not None and first.payload == b"one"
    queue.done(first)
    taken = queue.get(0.1)  # handed out but never done: must come back after a restart
    assert taken is not None and taken.payload == b"two"
    queue.close()
    queue.close()
    reopened = SqliteQueue(directory, 100)
    assert reopened.size() == 4
    again = reopened.get(0.1)
    assert again is not None and (again.signal, again.items, again.payload) == (
        "metrics",
        4,
        b"two",
    )
    assert reopened.get(0.01) is None
    reopened.done(again)
    reopened.close()
    assert SqliteQueue(directory, 100).size() == 0


def test_backoff() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, max_retry_after_s=10.0)
    assert backoff.delay(0, 3.0) == 3.0
    assert backoff.delay(0, 99.0) == 10.0
    assert 0.4 <= backoff.delay(0) <= 0.6
    assert 3.2 <= backoff.delay(20) <= 4.8


def test_grpc_sender_classifies_failures(grpc_sink: RawGrpcSink) -> None:
    sender = GrpcSender(grpc_sink.endpoint)
    payload = llm_request(1).SerializeToString()
    assert sender.send("traces", payload, 5) == 0
    grpc_sink.fail = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(PermanentError) as permanent:
        sender.send("traces", payload, 5)
    assert permanent.value.reason == "downstream_invalid_argument"
    grpc_sink.fail = grpc.StatusCode.RESOURCE_EXHAUSTED  # without RetryInfo: not retryable (spec)
    with pytest.raises(PermanentError):
        sender.send("traces", payload, 5)
    grpc_sink.retry_after = "1.5"
    with pytest.raises(RetryableError) as retry:
        sender.send("traces", payload, 5)
    assert retry.value.retry_after_s == 1.5
    grpc_sink.fail, grpc_sink.retry_after = grpc.StatusCode.UNAVAILABLE, None
    with pytest.raises(RetryableError):
        sender.send("traces", payload, 5)
    grpc_sink.stop()
    with pytest.raises(RetryableError):
        sender.send("traces", payload, 1)
    sender.close()


def test_http_sender_classifies_failures(http_sink: RawHttpSink) -> None:
    sender = make_sender(http_sink.endpoint + "/", "http/protobuf")
    assert isinstance(sender, HttpSender)
    payload = llm_request(1).SerializeToString()
    assert sender.send("traces", payload, 5) == 0
    assert http_sink.payloads() == [payload]
    http_sink.fail, http_sink.retry_after = 503, "3"
    with pytest.raises(RetryableError) as retry:
        sender.send("traces", payload, 5)
    assert retry.value.retry_after_s == 3.0
    http_sink.fail = 400
    with pytest.raises(PermanentError):
        sender.send("traces", payload, 5)
    sender.close()
    refused = HttpSender("http://127.0.0.1:9")  # discard port: nobody listens
    with pytest.raises(RetryableError):
        refused.send("traces", payload, 2)
    refused.close()


def test_retry_after_parsing() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


class FlakySender:
    endpoint = "fake"

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.delivered: list[bytes] = []
        self.lock = threading.Lock()

    def send(self, signal: str, payload: bytes, timeout: float) -> int:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.delivered.append(payload)
        return 1 if payload == b"partial" else 0

    def close(self) -> None:
        pass


def test_forwarder_retries_then_delivers_exactly_once(
    metrics: tuple[GatewayMetrics, InMemoryMetricReader],
) -> None:
    gm, reader = metrics
    queue = MemoryQueue(100)
    sender = FlakySender([RetryableError("down"), RetryableError("down", retry_after_s=0.01)])
    forwarder = Forwarder(queue, sender, gm, workers=2, backoff=Backoff(0.01, 0.05))
    forwarder.start()
    queue.put("traces", 5, b"batch-1")
    queue.put("traces", 3, b"partial")
    assert wait_until(lambda: queue.size() == 0, 5)
    forwarder.shutdown(1.0)
    forwarder.shutdown(1.0)
    assert sorted(sender.delivered) == [b"batch-1", b"partial"]
    assert _sum(reader, "otel_llm.gateway.forwarded") == 7
    assert _sum(reader, "otel_llm.gateway.dropped", reason="downstream_rejected") == 1
    assert _sum(reader, "otel_llm.gateway.export.duration", outcome="retry") == 2


def test_forwarder_drops_permanent_failures(
    metrics: tuple[GatewayMetrics, InMemoryMetricReader],
) -> None:
    gm, reader = metrics
    queue = MemoryQueue(100)
    sender = FlakySender([PermanentError("no", reason="downstream_invalid_argument")])
    forwarder = Forwarder(queue, sender, gm, workers=1)
    forwarder.start()
    queue.put("traces", 5, b"bad")
    assert wait_until(lambda: queue.size() == 0, 5)
    forwarder.shutdown(1.0)
    assert sender.delivered == []
    assert _sum(reader, "otel_llm.gateway.dropped", reason="downstream_invalid_argument") == 5


def test_shutdown_deadline_counts_what_a_memory_queue_loses(
    metrics: tuple[GatewayMetrics, InMemoryMetricReader],
) -> None:
    gm, reader = metrics
    queue = MemoryQueue(100)
    sender = FlakySender([RetryableError("down")] * 1000)
    forwarder = Forwarder(queue, sender, gm, workers=1, backoff=Backoff(0.05, 0.05))
    forwarder.start()
    for n in range(4):
        queue.put("traces", 2, b"x%d" % n)
    forwarder.shutdown(0.3)
    assert _sum(reader, "otel_llm.gateway.dropped", reason="shutdown") == 8
    assert queue.size() == 0


def test_shutdown_without_start_is_safe(
    metrics: tuple[GatewayMetrics, InMemoryMetricReader], tmp_path: Any
) -> None:
    gm, _ = metrics
    queue = SqliteQueue(os.fspath(tmp_path), 10)
    Forwarder(queue, FlakySender([]), gm).shutdown(0.1)
    queue.close()
