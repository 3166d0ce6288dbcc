"""`otel-llm serve` wiring: spans received by the gateway feed the alert evaluator."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otel_llm.gateway import Gateway
from otel_llm.serve import wire
from tests.gateway.gateway_support import make_request, make_span, wait_until

RULES = """
include_defaults: false
jaeger_url: http://jaeger.example:16686
rules:
  - name: GatewayErrors
    metric: error_rate
    op: ">"
    threshold: 0.5
    window: 5m
    min_calls: 2
    severity: critical
"""


def failing_span() -> object:
    span = make_span("chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "error.type": "RateLimitError",
    }, error=True)
    now = time.time_ns()
    span.start_time_unix_nano, span.end_time_unix_nano = now - 10**8, now  # type: ignore[attr-defined]
    return span


def test_serve_wiring_fires_alerts_from_received_spans(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gateway = make_gateway(rules=str(rules), start=False)
    cleanup = wire(gateway)
    try:
        gateway.start()
        spans = [failing_span() for _ in range(3)]
        with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc.port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            stub.Export(make_request(*spans), timeout=5)  # type: ignore[arg-type]
        service = gateway.alerts
        assert wait_until(lambda: any(a.state == "firing" for a in service.active()), timeout=10)
        (alert,) = service.active()
        sent = {s.trace_id.hex() for s in spans}  # type: ignore[attr-defined]
        assert set(alert.trace_ids) <= sent and alert.trace_ids
        assert alert.trace_links[0].startswith("http://jaeger.example:16686/trace/")
    finally:
        gateway.shutdown()
        cleanup()
