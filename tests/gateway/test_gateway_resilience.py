"""Outages, overload and crashes: every acknowledged span is delivered exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from otel_llm.gateway import Gateway
from otel_llm.gateway.exporter import GRPC_METHODS
from tests.gateway.gateway_support import OFFICIAL, RawGrpcSink, llm_request, sample, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sdk_batch(count: int) -> Sequence[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for _ in range(count):
        with tracer.start_as_current_span("chat gpt-4o", attributes=OFFICIAL):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def _exactly_once(sink: RawGrpcSink, expected: set[bytes]) -> None:
    assert wait_until(lambda: len(sink.span_ids()) >= len(expected), 15), (
        len(sink.span_ids()),
        len(expected),
    )
    counts = collections.Counter(sink.span_ids())
    assert set(counts) == expected
    assert max(counts.values()) == 1


def test_downstream_outage_within_the_queue_bound(make_gateway: Callable[..., Gateway]) -> None:
    sink = RawGrpcSink()
    try:
        gateway = make_gateway(forward=sink.endpoint, queue_size=5000)
        sink.stop()  # the downstream goes away
        exporter = OTLPSpanExporter(endpoint=f"http://{gateway.grpc_address}", insecure=True)
        sent: set[bytes] = set()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # clients keep sending during the outage
            batch = _sdk_batch(50)
            assert exporter.export(batch) is SpanExportResult.SUCCESS
            sent.update(span.context.span_id.to_bytes(8, "big") for span in batch)
            time.sleep(0.1)
        exporter.shutdown()
        assert sample(gateway.registry, "otel_llm_gateway_queue_size") == len(sent)
        assert sink.span_ids() == []
        sink.restart()  # back on the same port
        _exactly_once(sink, sent)
        assert wait_until(lambda: sample(gateway.registry, "otel_llm_gateway_queue_size") == 0, 5)
        assert sample(gateway.registry, "otel_llm_gateway_dropped_total") == 0
        # The sink has the spans as soon as it answers; the gateway counts them after it
        # reads that answer.
        assert wait_until(
            lambda: sample(gateway.registry, "otel_llm_gateway_forwarded_total") == len(sent), 10)
    finally:
        sink.close()


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_overload_is_refused_and_nothing_acknowledged_is_lost(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint, queue_size=2048, export_workers=1)
    grpc_sink.stop()  # the slowest downstream there is: the queue fills and stays full
    template = llm_request(512)
    spans = template.resource_spans[0].scope_spans[0].spans
    accepted: set[bytes] = set()
    codes: collections.Counter[str] = collections.Counter()
    retry_infos = 0
    rss_before = _rss_kib()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        export = channel.unary_unary(GRPC_METHODS["traces"])
        for _ in range(100):  # 51,200 spans, ~33 MB: 25 times what the queue may hold
            for span in spans:
                span.span_id = os.urandom(8)
            try:
                export(template.SerializeToString(), timeout=5)
            except grpc.RpcError as error:
                codes[error.code().name] += 1  # type: ignore[attr-defined]
                trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
                retry_infos += "google.rpc.retryinfo-bin" in trailers
                retry_infos += "grpc-status-details-bin" in trailers
                continue
            codes["OK"] += 1
            accepted.update(span.span_id for span in spans)
            assert sample(gateway.registry, "otel_llm_gateway_queue_size") <= 2048
    rss_growth = _rss_kib() - rss_before
    reply = httpx.post(
        f"http://{gateway.http_address}/v1/traces",
        content=template.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
    assert codes["OK"] == 4 and codes["RESOURCE_EXHAUSTED"] == 96
    assert retry_infos == 2 * codes["RESOURCE_EXHAUSTED"]  # in status details and SDK's header
    assert rss_growth < 15 * 1024, rss_growth  # unbounded, the refused batches would be ~30 MB
    refused = sample(
        gateway.registry, "otel_llm_gateway_refused_requests_total", reason="queue_full"
    )
    assert refused == 97
    assert sample(gateway.registry, "otel_llm_cost_usd_total") > 0
    grpc_sink.restart()
    _exactly_once(grpc_sink, accepted)
    assert sample(gateway.registry, "otel_llm_gateway_dropped_total") == 0


def test_shutdown_drains_the_queue(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    grpc_sink.delay_s = 0.05
    gateway = make_gateway(forward=grpc_sink.endpoint, export_workers=1, shutdown_timeout=10.0)
    sent: set[bytes] = set()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        for _ in range(10):
            request = llm_request(20)
            channel.unary_unary(GRPC_METHODS["traces"])(request.SerializeToString(), timeout=5)
            sent.update(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
    started = time.monotonic()
    gateway.shutdown()
    assert time.monotonic() - started < 5
    assert collections.Counter(grpc_sink.span_ids()) == collections.Counter(sent)


def test_shutdown_gives_up_at_the_deadline(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    registry = CollectorRegistry()  # ours, so it outlives the gateway's shutdown
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    gateway = make_gateway(
        forward=grpc_sink.endpoint, shutdown_timeout=0.5, registry=registry, meter_provider=provider
    )
    grpc_sink.stop()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        channel.unary_unary(GRPC_METHODS["traces"])(llm_request(7).SerializeToString(), timeout=5)
    started = time.monotonic()
    gateway.shutdown()
    gateway.shutdown()
    assert time.monotonic() - started < 4
    assert sample(registry, "otel_llm_gateway_dropped_total", reason="shutdown") == 7
    provider.shutdown()


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m otel_llm.gateway`` and return it with its gRPC address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_LLM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm.gateway", "--grpc-port", "0", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()  # bounded: the process prints it or exits
    if not line.startswith("otel-llm serve: grpc="):
        _stop(process)
        raise AssertionError(f"unexpected start-up line {line!r}")
    grpc_part, _http_part = line.removeprefix("otel-llm serve: ").split()
    return process, grpc_part.removeprefix("grpc=")


def _stop(process: subprocess.Popen[str], signum: int = signal.SIGKILL) -> int:
    if process.poll() is None:
        process.send_signal(signum)
    code = process.wait(15)
    if process.stdout is not None:
        process.stdout.close()
    return code


def test_disk_queue_survives_kill_9(tmp_path: Any) -> None:
    sink = RawGrpcSink()
    sink.stop()  # down from the start: everything acknowledged sits in the disk queue
    queue_dir = str(tmp_path / "queue")
    processes: list[subprocess.Popen[str]] = []
    try:
        process, address = _serve("--forward", sink.endpoint, "--queue-dir", queue_dir)
        processes.append(process)
        sent: set[bytes] = set()
        with grpc.insecure_channel(address) as channel:
            for _ in range(5):
                request = llm_request(100)
                channel.unary_unary(GRPC_METHODS["traces"])(request.SerializeToString(), timeout=5)
                sent.update(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
        assert _stop(process, signal.SIGKILL) == -signal.SIGKILL
        sink.restart()
        process, address = _serve("--forward", sink.endpoint, "--queue-dir", queue_dir)
        processes.append(process)
        _exactly_once(sink, sent)
        # Delivered rows are deleted: a clean SIGTERM exits 0 and a third start sends nothing.
        assert _stop(process, signal.SIGTERM) == 0
        process, address = _serve("--forward", sink.endpoint, "--queue-dir", queue_dir)
        processes.append(process)
        time.sleep(0.5)
        assert len(sink.span_ids()) == len(sent)
    finally:
        for process in processes:
            _stop(process)
        sink.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_one_line_and_exits_cleanly_on_signal(signum: int) -> None:
    process, address = _serve()
    try:
        with grpc.insecure_channel(address) as channel:
            channel.unary_unary(GRPC_METHODS["traces"])(
                llm_request(1).SerializeToString(), timeout=5
            )
        process.send_signal(signum)
        assert process.wait(15) == 0
        assert process.stdout is not None and process.stdout.read() == ""  # exactly one line
    finally:
        _stop(process)


class Blocking:
    """A call observer (alert evaluator stand-in) that holds requests until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def observe(self, record: Any) -> None:
        self.entered.set()
        self.release.wait(10)


def test_requests_beyond_max_inflight_are_refused_at_once(
    make_gateway: Callable[..., Gateway],
) -> None:
    blocking = Blocking()
    gateway = make_gateway(max_inflight=1, observers=[blocking])
    payload = llm_request(1).SerializeToString()
    url = f"http://{gateway.http_address}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    with futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, url, content=payload, headers=headers, timeout=15)
        assert blocking.entered.wait(10)
        second = httpx.post(url, content=payload, headers=headers, timeout=5)
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        blocking.entered.clear()
        with grpc.insecure_channel(gateway.grpc_address) as channel:
            export = channel.unary_unary(GRPC_METHODS["traces"])
            held_grpc = export.future(payload, timeout=15)
            assert blocking.entered.wait(10)
            with pytest.raises(grpc.RpcError) as info:
                export(payload, timeout=5)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            blocking.release.set()
            held_grpc.result()
        assert held.result().status_code == 200
    refused = sample(
        gateway.registry, "otel_llm_gateway_refused_requests_total", reason="too_many_requests"
    )
    assert refused == 1
