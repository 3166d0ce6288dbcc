"""Loopback OTLP receivers for tests: what the SDK's real exporters send, decoded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


class Sink:
    """Collects decoded ExportTraceServiceRequests; ``wait_for`` polls with a deadline."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._cond = threading.Condition()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def spans(self) -> Iterator[Span]:
        with self._cond:
            requests = list(self.requests)
        for request in requests:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    yield from ss.spans

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Span]:
        with self._cond:
            self._cond.wait_for(lambda: sum(1 for _ in self._iter_unlocked()) >= count, timeout)
        return list(self.spans())

    def _iter_unlocked(self) -> Iterator[Span]:
        for request in self.requests:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    yield from ss.spans


def attributes(span: Span) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in span.attributes}


class GrpcSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        sink = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                sink.add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(grace=None)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1, an ephemeral port, serving from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.port = self.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class HttpSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, bytes]] = []  # every POST: (path, raw body)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.bodies.append((self.path, body))
                if self.path == "/v1/traces":
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    sink.add(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = LoopbackHTTPServer(Handler)
        self.port, self.endpoint = self.server.port, self.server.endpoint

    def close(self) -> None:
        self.server.close()
