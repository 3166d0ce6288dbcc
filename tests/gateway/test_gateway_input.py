"""Bad input on both receivers: the right status, a clear message, counted, nothing else changed."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable

import grpc
import httpx
import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]

from otel_llm.gateway import Gateway
from otel_llm.gateway.exporter import GRPC_METHODS
from tests.gateway.gateway_support import (
    OFFICIAL,
    RawGrpcSink,
    llm_request,
    make_request,
    make_span,
    sample,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 64 * 1024


def _valid() -> bytes:
    return llm_request(2).SerializeToString()


def _bad_utf8() -> bytes:
    return (
        make_request(make_span("NAME", OFFICIAL)).SerializeToString().replace(b"NAME", b"N\xffME")
    )


def _post(
    gateway: Gateway, body: bytes, headers: dict[str, str], path: str = "/v1/traces"
) -> httpx.Response:
    return httpx.post(
        f"http://{gateway.http_address}{path}", content=body, headers=headers, timeout=10
    )


def _grpc(gateway: Gateway, body: bytes, **kwargs: object) -> grpc.StatusCode:
    with grpc.insecure_channel(
        gateway.grpc_address, options=[("grpc.max_send_message_length", -1)]
    ) as channel:
        try:
            channel.unary_unary(GRPC_METHODS["traces"])(body, timeout=10, **kwargs)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


HTTP_CASES = [
    ("garbage protobuf", b"\xff\xfe\x00garbage", PROTOBUF, 400, "invalid_protobuf"),
    ("truncated protobuf", _valid()[:-7], PROTOBUF, 400, "invalid_protobuf"),
    ("invalid utf-8 in a string field", _bad_utf8(), PROTOBUF, 400, "invalid_protobuf"),
    ("wrong content type", _valid(), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("no content type", _valid(), {}, 415, "unsupported_media_type"),
    ("too large", bytes(LIMIT + 1), PROTOBUF, 413, "too_large"),
    (
        "gzip bomb",
        gzip.compress(bytes(50 * 1024 * 1024)),
        {**PROTOBUF, "Content-Encoding": "gzip"},
        413,
        "too_large",
    ),
    (
        "corrupt gzip",
        b"\x1f\x8b\x08\x00garbage",
        {**PROTOBUF, "Content-Encoding": "gzip"},
        400,
        "invalid_compression",
    ),
    (
        "unknown encoding",
        _valid(),
        {**PROTOBUF, "Content-Encoding": "br"},
        415,
        "unsupported_encoding",
    ),
    ("invalid JSON", b'{"resourceSpans": [', JSON, 400, "invalid_json"),
    ("JSON not an object", b"[1, 2]", JSON, 400, "invalid_json"),
    ("JSON not UTF-8", b'{"resourceSpans": [], "x": "\xff"}', JSON, 400, "invalid_json"),
    (
        "JSON lone surrogate",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\\ud800"}]}]}]}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "JSON bad hex id",
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
        JSON,
        400,
        "invalid_json",
    ),
    ("JSON wrong type", b'{"resourceSpans": {"a": 1}}', JSON, 400, "invalid_json"),
    ("JSON deep nesting", b"[" * 30_000 + b"]" * 30_000, JSON, 400, "invalid_json"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "reason"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES]
)
def test_http_bad_input(
    make_gateway: Callable[..., Gateway],
    grpc_sink: RawGrpcSink,
    case: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint, max_request_bytes=LIMIT)
    reply = _post(gateway, body, headers)
    assert reply.status_code == status, reply.content
    error = status_pb2.Status()
    if reply.headers["content-type"].startswith("application/json"):
        assert reply.json()["message"]
    else:
        error.ParseFromString(reply.content)
        assert error.message
    assert (
        sample(
            gateway.registry,
            "otel_llm_gateway_refused_requests_total",
            reason=reason,
            transport="http",
        )
        == 1
    )
    # Nothing forwarded, nothing accounted; and the gateway keeps serving.
    assert sample(gateway.registry, "otel_llm_gateway_received_total") == 0
    assert sample(gateway.registry, "otel_llm_cost_usd_total") == 0
    assert _post(gateway, _valid(), PROTOBUF).status_code == 200
    assert len(grpc_sink.wait_for_spans(2)) == 2


def test_http_method_and_path(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    assert httpx.get(f"http://{gateway.http_address}/v1/traces").status_code == 405
    assert _post(gateway, _valid(), PROTOBUF, path="/v1/nothing").status_code == 404


GRPC_CASES = [
    ("garbage", b"\xff\xfe\x00garbage", {}),
    ("truncated", _valid()[:-7], {}),
    ("invalid utf-8", _bad_utf8(), {}),
    ("too large", bytes(LIMIT + 1), {}),
    ("too large gzip", bytes(LIMIT + 1), {"compression": grpc.Compression.Gzip}),
]


@pytest.mark.parametrize(("case", "body", "kwargs"), GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_grpc_bad_input(
    make_gateway: Callable[..., Gateway],
    grpc_sink: RawGrpcSink,
    case: str,
    body: bytes,
    kwargs: dict[str, object],
) -> None:
    gateway = make_gateway(forward=grpc_sink.endpoint, max_request_bytes=LIMIT)
    assert _grpc(gateway, body, **kwargs) is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        sample(gateway.registry, "otel_llm_gateway_refused_requests_total", transport="grpc") == 1
    )
    assert _grpc(gateway, _valid()) is grpc.StatusCode.OK
    assert len(grpc_sink.wait_for_spans(2)) == 2


def test_grpc_gzip_bomb_is_stopped_by_the_hard_ceiling(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(max_request_bytes=LIMIT)
    # 64 MiB of zeros compress to ~64 KiB; grpc-core stops inflating at twice the limit.
    code = _grpc(gateway, bytes(64 * 1024 * 1024), compression=grpc.Compression.Gzip)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _grpc(gateway, _valid()) is grpc.StatusCode.OK


def test_grpc_unknown_method(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    method = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
    with (
        grpc.insecure_channel(gateway.grpc_address) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(method)(b"", timeout=5)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_bearer_token_on_both_receivers(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-token-value"
    caplog.set_level(logging.DEBUG)
    gateway = make_gateway(token=secret)
    assert secret not in repr(gateway.settings)
    missing = _post(gateway, _valid(), PROTOBUF)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert (
        _post(gateway, _valid(), {**PROTOBUF, "Authorization": "Bearer wrong"}).status_code == 401
    )
    assert (
        _post(gateway, _valid(), {**PROTOBUF, "Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    assert _grpc(gateway, _valid()) is grpc.StatusCode.UNAUTHENTICATED
    assert (
        _grpc(gateway, _valid(), metadata=(("authorization", "Bearer nope"),))
        is grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        _grpc(gateway, _valid(), metadata=(("authorization", f"Bearer {secret}"),))
        is grpc.StatusCode.OK
    )
    assert (
        sample(
            gateway.registry, "otel_llm_gateway_refused_requests_total", reason="unauthenticated"
        )
        == 4
    )
    assert sample(gateway.registry, "otel_llm_gateway_received_total") == 4
    assert httpx.get(f"http://{gateway.http_address}/metrics").status_code == 200
    assert secret not in caplog.text


def test_sdk_exporter_with_token_header(make_gateway: Callable[..., Gateway]) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    gateway = make_gateway(token="tkn")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes=OFFICIAL):
        pass
    exporter = OTLPSpanExporter(
        endpoint=f"http://{gateway.grpc_address}",
        insecure=True,
        headers={"authorization": "Bearer tkn"},
    )
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()
    assert sample(gateway.registry, "otel_llm_cost_usd_total") > 0
