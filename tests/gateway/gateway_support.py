"""Test doubles for the gateway: raw loopback OTLP sinks, span builders, metric lookups."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry

from otel_llm.gateway.codec import REQUEST_TYPES, RESPONSE_TYPES
from otel_llm.gateway.exporter import GRPC_METHODS, HTTP_PATHS
from tests.otlp_sink import LoopbackHTTPServer

# One call described by three conventions, plus spans that are not LLM calls.
OFFICIAL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 200,
    "server.address": "api.openai.com",
}
OPENLLMETRY = {
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.prompt_tokens": 500,
    "gen_ai.usage.completion_tokens": 50,
    "llm.usage.total_tokens": 550,
}
OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.provider": "anthropic",
    "llm.model_name": "claude-3-5-haiku-20241022",
    "llm.token_count.prompt": 300,
    "llm.token_count.completion": 40,
}
FAILED = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "error.type": "rate_limit",
}
HTTP_ONLY = {
    "http.request.method": "GET",
    "url.full": "https://example.com/",
    "http.response.status_code": 200,
}


def any_value(value: object) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, (list, tuple)):
        out.array_value.values.extend(any_value(v) for v in value)
    else:
        out.string_value = str(value)
    return out


def make_span(name: str, attrs: Mapping[str, object], *, error: bool = False) -> Span:
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_500_000_000,
    )
    span.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attrs.items())
    if error:
        span.status.code = span.status.STATUS_CODE_ERROR
    return span


def make_request(*spans: Span, service: str = "rag-api") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    ss.scope.name = "test-instrumentation"
    ss.spans.extend(spans)
    return request


def llm_request(count: int = 4) -> ExportTraceServiceRequest:
    return make_request(*(make_span("chat gpt-4o", OFFICIAL) for _ in range(count)))


def attributes(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


class _Recorder:
    """What a sink received: (signal, raw bytes) in arrival order, and how it should answer."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.fail: grpc.StatusCode | int | None = None  # answer with this instead of OK
        self.fail_times = -1  # -1: for ever; n: the next n requests
        self.retry_after: str | None = None  # HTTP Retry-After / gRPC RetryInfo seconds
        self.delay_s = 0.0
        self.attempts = 0

    def record(self, signal: str, body: bytes) -> Any:
        time.sleep(self.delay_s)
        with self.cond:
            self.attempts += 1
            if self.fail is not None and self.fail_times != 0:
                if self.fail_times > 0:
                    self.fail_times -= 1
                return self.fail
            self.received.append((signal, body))
            self.cond.notify_all()
            return None

    def payloads(self, signal: str = "traces") -> list[bytes]:
        with self.cond:
            return [body for s, body in self.received if s == signal]

    def requests(self, signal: str = "traces") -> list[Any]:
        return [REQUEST_TYPES[signal].FromString(body) for body in self.payloads(signal)]  # type: ignore[index]

    def spans(self) -> list[Span]:
        return [
            s
            for r in self.requests()
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]

    def span_ids(self) -> list[bytes]:
        return [span.span_id for span in self.spans()]

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[Span]:
        wait_until(lambda: len(self.spans()) >= count, timeout)
        return self.spans()


class RawGrpcSink(_Recorder):
    """OTLP/gRPC server for all three signals that keeps the raw request bytes.

    ``stop()``/``restart()`` simulate an outage on the same port.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self._server: grpc.Server | None = None
        self.restart()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def restart(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        for signal, method in GRPC_METHODS.items():
            service, name = method.strip("/").split("/")
            handler = grpc.unary_unary_rpc_method_handler(self._handler(signal))
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, {name: handler}),)
            )
        deadline = time.monotonic() + 10
        port = 0
        while not port and time.monotonic() < deadline:  # the old socket may linger briefly
            try:
                port = server.add_insecure_port(f"127.0.0.1:{self.port}")
            except RuntimeError:
                time.sleep(0.05)
        assert port, "could not bind the sink"
        self.port = port
        server.start()
        self._server = server

    def _handler(self, signal: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            failure = self.record(signal, request)
            if failure is not None:
                if self.retry_after is not None:
                    info = error_details_pb2.RetryInfo()
                    info.retry_delay.FromNanoseconds(int(float(self.retry_after) * 1e9))
                    status = status_pb2.Status(code=failure.value[0], message="sink told to fail")
                    status.details.add().Pack(info)
                    context.set_trailing_metadata(
                        (("grpc-status-details-bin", status.SerializeToString()),)
                    )
                context.abort(failure, "sink told to fail")
            return RESPONSE_TYPES[signal]().SerializeToString()  # type: ignore[index]

        return export

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None).wait(5)
            self._server = None

    def close(self) -> None:
        self.stop()


class RawHttpSink(_Recorder):
    """OTLP/HTTP server for all three signals that keeps the raw bodies."""

    def __init__(self) -> None:
        super().__init__()
        sink = self
        paths = {path: signal for signal, path in HTTP_PATHS.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signal = paths.get(self.path)
                failure = sink.record(signal, body) if signal else 404
                self.send_response(int(failure) if failure is not None else 200)
                if failure is not None and sink.retry_after is not None:
                    self.send_header("Retry-After", sink.retry_after)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = LoopbackHTTPServer(Handler)
        self.port, self.endpoint = self.server.port, self.server.endpoint

    def close(self) -> None:
        self.server.close()


def spans_by_id(spans: Iterator[Span] | list[Span]) -> dict[bytes, Span]:
    return {span.span_id: span for span in spans}
