"""Fuzz both receivers: whatever the body, the answer is a 2xx/4xx status, never a crash or 500."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import grpc
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm.gateway import Gateway
from otel_llm.gateway.exporter import GRPC_METHODS
from tests.gateway.gateway_support import (
    FAILED,
    OFFICIAL,
    OPENINFERENCE,
    make_request,
    make_span,
    sample,
)

SEED = make_request(
    make_span("chat gpt-4o", OFFICIAL),
    make_span("x", OPENINFERENCE),
    make_span("chat", FAILED, error=True),
).SerializeToString()
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with a few bytes changed, cut or inserted: deep in the parser's paths."""
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


BODIES = st.one_of(st.binary(max_size=512), mutated())
OTLP_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "values",
    "startTimeUnixNano",
    "status",
    "code",
    "links",
    "events",
    "resource",
    "scope",
    "droppedAttributesCount",
    "flags",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "zz"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(OTLP_KEYS), children, max_size=5)
    ),
    max_leaves=30,
)
JSON_BODIES = st.builds(
    lambda spans: {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]},
    st.lists(st.dictionaries(st.sampled_from(OTLP_KEYS), JSON_VALUES, max_size=6), max_size=3),
)


def test_fuzz_http(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(max_request_bytes=64 * 1024)
    url = f"http://{gateway.http_address}/v1/traces"
    with httpx.Client(timeout=10) as client:

        @FUZZ
        @given(
            body=BODIES,
            content_type=st.sampled_from(
                ["application/x-protobuf", "application/json", "text/plain"]
            ),
            gzipped=st.booleans(),
        )
        def check(body: bytes, content_type: str, gzipped: bool) -> None:
            headers = {"Content-Type": content_type}
            if gzipped:
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            reply = client.post(url, content=body, headers=headers)
            assert reply.status_code in (200, 400, 413, 415), (reply.status_code, reply.content)

        @FUZZ
        @given(document=JSON_BODIES)
        def check_json(document: Any) -> None:
            reply = client.post(
                url, content=json.dumps(document), headers={"Content-Type": "application/json"}
            )
            assert reply.status_code in (200, 400), (reply.status_code, reply.content)

        check()
        check_json()
    assert (
        sample(gateway.registry, "otel_llm_gateway_refused_requests_total", reason="internal_error")
        == 0
    )
    assert sample(gateway.registry, "otel_llm_internal_errors_total") == 0


def test_fuzz_grpc(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        export = channel.unary_unary(GRPC_METHODS["traces"])

        @FUZZ
        @given(body=BODIES)
        def check(body: bytes) -> None:
            try:
                export(body, timeout=10)
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error  # type: ignore[attr-defined]

        check()
    assert (
        sample(gateway.registry, "otel_llm_gateway_refused_requests_total", reason="internal_error")
        == 0
    )
    assert sample(gateway.registry, "otel_llm_internal_errors_total") == 0
