"""End to end over loopback: the SDK's real OTLP exporters → gateway → a downstream sink."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_llm.gateway import Gateway
from otel_llm.gateway.exporter import GRPC_METHODS
from tests.gateway.gateway_support import (
    FAILED,
    HTTP_ONLY,
    OFFICIAL,
    OPENINFERENCE,
    OPENLLMETRY,
    RawGrpcSink,
    RawHttpSink,
    attributes,
    make_request,
    make_span,
    sample,
    spans_by_id,
    wait_until,
)

ADDED_KEYS = {
    "otel_llm.cost.usd",
    "otel_llm.cost.input_usd",
    "otel_llm.cost.output_usd",
    "otel_llm.cost.source",
    "gen_ai.usage.cost",
    "error.type",
    "otel_llm.error.category",
    "otel_llm.error.severity",
}


def sdk_spans() -> Sequence[ReadableSpan]:
    """Plain SDK spans as other instrumentations write them (otel-llm absent on the client)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rag-api", "otel_llm.project.id": "p1"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("third.party.instrumentation", "1.2.3")
    with tracer.start_as_current_span(
        "GET /ask", kind=SpanKind.SERVER, attributes=HTTP_ONLY
    ) as root:
        root.add_event("cache.miss", {"key": "q1"})
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=OFFICIAL):
            pass
        with tracer.start_as_current_span(
            "openai.chat", kind=SpanKind.CLIENT, attributes=OPENLLMETRY
        ):
            pass
        with tracer.start_as_current_span(
            "ChatAnthropic",
            attributes=OPENINFERENCE,
            links=[Link(root.get_span_context(), {"why": "x"})],
        ):
            pass
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=SpanKind.CLIENT, attributes=FAILED
        ) as failed:
            failed.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
    provider.shutdown()
    return memory.get_finished_spans()


def _exporter(kind: str, endpoint: str, gzip: bool = False) -> GrpcSpanExporter | HttpSpanExporter:
    if kind == "grpc":
        return GrpcSpanExporter(
            endpoint=endpoint,
            insecure=True,
            compression=grpc.Compression.Gzip if gzip else None,
        )
    return HttpSpanExporter(
        endpoint=endpoint + "/v1/traces",
        compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
    )


def _send(kind: str, endpoint: str, spans: Sequence[ReadableSpan], gzip: bool = False) -> None:
    exporter = _exporter(kind, endpoint, gzip)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def _gateway_endpoint(gateway: Gateway, kind: str) -> str:
    return f"http://{gateway.grpc_address if kind == 'grpc' else gateway.http_address}"


@pytest.mark.parametrize(
    ("kind", "gzip"), [("grpc", False), ("grpc", True), ("http", False), ("http", True)]
)
def test_sdk_spans_arrive_enriched_and_otherwise_identical(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink, kind: str, gzip: bool
) -> None:
    spans = sdk_spans()
    direct = RawGrpcSink()
    try:
        _send("grpc", direct.endpoint, spans)
        expected = direct.requests()[0]
    finally:
        direct.close()
    gateway = make_gateway(forward=grpc_sink.endpoint)
    _send(kind, _gateway_endpoint(gateway, kind), spans, gzip)

    got = grpc_sink.wait_for_spans(len(spans))
    assert len(got) == len(spans)
    forwarded = grpc_sink.requests()[0]
    # Resource and scope untouched.
    assert forwarded.resource_spans[0].resource == expected.resource_spans[0].resource
    assert (
        forwarded.resource_spans[0].scope_spans[0].scope
        == expected.resource_spans[0].scope_spans[0].scope
    )
    before = spans_by_id(
        s for rs in expected.resource_spans for ss in rs.scope_spans for s in ss.spans
    )
    enriched: dict[str, dict[str, object]] = {}
    for span in got:
        original = before[span.span_id]
        added = [kv for kv in span.attributes[len(original.attributes) :]]
        # Existing attributes kept in place; only our keys appended; everything else identical.
        assert list(span.attributes[: len(original.attributes)]) == list(original.attributes)
        assert {kv.key for kv in added} <= ADDED_KEYS
        stripped = type(span)()
        stripped.CopyFrom(span)
        del stripped.attributes[len(original.attributes) :]
        assert stripped == original
        enriched[span.name + ":" + str(attributes(original).get("error.type", ""))] = {
            kv.key: attributes(span)[kv.key] for kv in added
        }
    official = enriched["chat gpt-4o:"]
    assert official["otel_llm.cost.source"] == "price_table"
    assert official["otel_llm.cost.usd"] == official["gen_ai.usage.cost"]
    assert float(official["otel_llm.cost.usd"]) > 0  # type: ignore[arg-type]
    assert float(enriched["openai.chat:"]["otel_llm.cost.usd"]) > 0  # type: ignore[arg-type]
    assert float(enriched["ChatAnthropic:"]["otel_llm.cost.usd"]) > 0  # type: ignore[arg-type]
    failed = enriched["chat gpt-4o:rate_limit"]
    assert failed["otel_llm.error.category"] == "resource_error"
    assert failed["otel_llm.error.severity"] == "high"
    assert "error.type" not in failed  # the span already said it
    assert enriched["GET /ask:"] == {}
    # Accounted: cost and errors in the gateway's Prometheus registry; project from the resource.
    assert sample(gateway.registry, "otel_llm_cost_usd_total", otel_llm_project_id="p1") > 0
    assert sample(gateway.registry, "otel_llm_errors_total", error_type="rate_limit") == 1
    assert sample(gateway.registry, "otel_llm_gateway_received_total", transport=kind) == len(spans)
    assert sample(gateway.registry, "otel_llm_gateway_enriched_spans_total") == 4


def test_no_forward_enriches_and_accounts_only(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    _send("grpc", _gateway_endpoint(gateway, "grpc"), sdk_spans())
    assert sample(gateway.registry, "otel_llm_cost_usd_total") > 0
    text = httpx.get(f"http://{gateway.http_address}/metrics").text
    assert "otel_llm_gateway_received_total" in text
    assert "otel_llm_cost_usd_total" in text
    assert "otel_llm_gateway_queue_size" not in text  # no queue without a downstream


def test_http_protobuf_forwarding(
    make_gateway: Callable[..., Gateway], http_sink: RawHttpSink
) -> None:
    gateway = make_gateway(forward=http_sink.endpoint, forward_protocol="http/protobuf")
    spans = sdk_spans()
    _send("grpc", _gateway_endpoint(gateway, "grpc"), spans)
    assert len(http_sink.wait_for_spans(len(spans))) == len(spans)
    # The sink has the spans as soon as it answers; the gateway counts them after it
    # reads that answer.
    assert wait_until(
        lambda: sample(gateway.registry, "otel_llm_gateway_forwarded_total") == len(spans), 10)


def test_otlp_json_with_hex_ids(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint)
    trace_id, span_id, parent = (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "x"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": parent,
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000001000000000,
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o"},
                                    },
                                    {
                                        "key": "gen_ai.provider.name",
                                        "value": {"stringValue": "openai"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "100"},
                                    },
                                    {
                                        "key": "gen_ai.usage.output_tokens",
                                        "value": {"intValue": 10},
                                    },
                                ],
                                "links": [{"traceId": trace_id, "spanId": parent}],
                                "status": {"code": 1},
                                "futureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    reply = httpx.post(
        f"http://{gateway.http_address}/v1/traces",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {}
    [span] = grpc_sink.wait_for_spans(1)
    assert span.trace_id.hex() == trace_id and span.span_id.hex() == span_id
    assert span.parent_span_id.hex() == parent and span.links[0].span_id.hex() == parent
    assert span.start_time_unix_nano == 1700000000000000000 and span.kind == 3
    assert attributes(span)["gen_ai.usage.input_tokens"] == 100
    assert attributes(span)["otel_llm.cost.usd"] > 0


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_invalid_span_ids_are_rejected_as_partial_success(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink, kind: str
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint)
    good = make_span("chat gpt-4o", OFFICIAL)
    short = make_span("chat gpt-4o", OFFICIAL)
    short.trace_id = b"\x01" * 8
    zero = make_span("chat gpt-4o", OFFICIAL)
    zero.span_id = bytes(8)
    payload = make_request(good, short, zero).SerializeToString()
    if kind == "grpc":
        with grpc.insecure_channel(gateway.grpc_address) as channel:
            raw = channel.unary_unary(GRPC_METHODS["traces"])(payload, timeout=5)
    else:
        reply = httpx.post(
            f"http://{gateway.http_address}/v1/traces",
            content=payload,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert reply.status_code == 200
        raw = reply.content
    response = ExportTraceServiceResponse.FromString(raw)
    assert response.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    assert [s.span_id for s in grpc_sink.wait_for_spans(1)] == [good.span_id]
    assert sample(gateway.registry, "otel_llm_gateway_dropped_total", reason="invalid_span_id") == 2


def test_metrics_and_logs_forwarded_unchanged(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint)
    metrics = ExportMetricsServiceRequest()
    metric = (
        metrics.resource_metrics.add()
        .scope_metrics.add()
        .metrics.add(name="gen_ai.client.token.usage")
    )
    point = metric.sum.data_points.add(as_int=42, time_unix_nano=7)
    point.attributes.add(key="k").value.string_value = "v"
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=9)
    record.body.string_value = "hello"
    metric_bytes, log_bytes = metrics.SerializeToString(), logs.SerializeToString()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        channel.unary_unary(GRPC_METHODS["metrics"])(metric_bytes, timeout=5)
    reply = httpx.post(
        f"http://{gateway.http_address}/v1/logs",
        content=log_bytes,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert reply.status_code == 200
    assert _wait_payloads(grpc_sink, "metrics") == [metric_bytes]
    assert _wait_payloads(grpc_sink, "logs") == [log_bytes]
    assert sample(gateway.registry, "otel_llm_gateway_received_total", signal="metrics") == 1
    assert sample(gateway.registry, "otel_llm_gateway_received_total", signal="logs") == 1


def test_unmodified_traces_are_forwarded_as_the_same_bytes(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint)
    payload = make_request(make_span("GET /", HTTP_ONLY)).SerializeToString() + b"\xa2\x06\x03xyz"
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        channel.unary_unary(GRPC_METHODS["traces"])(payload, timeout=5)
    assert _wait_payloads(grpc_sink, "traces") == [payload]  # unknown field 100 kept too


def test_enrichment_off_is_pass_through(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint, enrich=False)
    payload = make_request(make_span("chat gpt-4o", OFFICIAL)).SerializeToString()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        channel.unary_unary(GRPC_METHODS["traces"])(payload, timeout=5)
    assert _wait_payloads(grpc_sink, "traces") == [payload]
    assert sample(gateway.registry, "otel_llm_cost_usd_total") == 0


def test_empty_request_is_accepted(
    make_gateway: Callable[..., Gateway], grpc_sink: RawGrpcSink
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint)
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        raw = channel.unary_unary(GRPC_METHODS["traces"])(b"", timeout=5)
    assert ExportTraceServiceResponse.FromString(raw) == ExportTraceServiceResponse()
    reply = httpx.post(
        f"http://{gateway.http_address}/v1/traces",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200
    assert grpc_sink.payloads() == []


def _wait_payloads(sink: RawGrpcSink, signal: str) -> list[bytes]:
    wait_until(lambda: bool(sink.payloads(signal)), 5)
    return sink.payloads(signal)
