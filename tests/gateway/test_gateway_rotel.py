"""A collector hop in front of the gateway: SDK OTLP exporter → rotel → gateway → loopback sink.

rotel (PyPI ``rotel``: a Rust OpenTelemetry collector, the binary shipped in the wheel) runs from
its own venv on 127.0.0.1 (``tests/backends.py``). What it batches and re-sends — over gRPC or
HTTP, gzip-compressed — must reach the downstream enriched, each span once, everything the client
set intact. (The same hop into Phoenix, through ``otel-llm serve``: test_gateway_phoenix.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm.gateway import Gateway
from tests.backends import (
    Rotel,
    expected_cost_usd,
    export_spans,
    llm_trace,
    span_id_hex,
    trace_id_hex,
)
from tests.gateway.gateway_support import RawGrpcSink, attributes, sample

pytest_plugins = ["tests.backends"]

ADDED_KEYS = {
    "otel_llm.cost.usd",
    "otel_llm.cost.input_usd",
    "otel_llm.cost.output_usd",
    "otel_llm.cost.source",
    "gen_ai.usage.cost",
    "otel_llm.error.category",
    "otel_llm.error.severity",
}


def check_enriched(sent: Sequence[ReadableSpan], forwarded: Sequence[Span]) -> None:
    """``forwarded`` (protobuf, as the downstream got them) are ``sent`` plus our attributes."""
    by_id = {span.span_id.hex(): span for span in forwarded}
    assert sorted(by_id) == sorted(span_id_hex(span) for span in sent)
    assert len(forwarded) == len(sent)  # each once
    cost = expected_cost_usd()
    for span in sent:
        got = by_id[span_id_hex(span)]
        original = dict(span.attributes or {})
        attrs = attributes(got)
        assert got.name == span.name
        assert got.trace_id.hex() == trace_id_hex(span)
        assert {k: attrs.get(k) for k in original} == original
        added = {k: v for k, v in attrs.items() if k not in original}
        assert set(added) <= ADDED_KEYS
        if span.name == "chat gpt-4o-mini":
            assert added["otel_llm.cost.usd"] == cost
            assert added["gen_ai.usage.cost"] == cost
            assert added["otel_llm.cost.source"] == "price_table"
        elif span.name == "chat gpt-4o-mini retry":
            assert added["otel_llm.error.category"] == "resource_error"
        else:  # the request span is no LLM call: left alone
            assert added == {}


@pytest.mark.parametrize(("client", "hop"), [("grpc", "grpc"), ("http", "http")])
def test_spans_through_rotel_arrive_enriched(
    make_rotel: Callable[..., Rotel],
    make_gateway: Callable[..., Gateway],
    grpc_sink: RawGrpcSink,
    client: str,
    hop: str,
) -> None:
    """``client``: the SDK exporter into rotel; ``hop``: rotel's exporter into the gateway."""
    gateway = make_gateway(forward=grpc_sink.endpoint)
    address = gateway.grpc_address if hop == "grpc" else gateway.http_address
    rotel = make_rotel(forward=f"http://{address}", protocol=hop)
    spans = llm_trace("rotel-hop")

    export_spans(client, rotel.endpoint(client), spans)

    check_enriched(spans, grpc_sink.wait_for_spans(len(spans), timeout=30))
    resources = [rs.resource for request in grpc_sink.requests() for rs in request.resource_spans]
    for resource in resources:
        resource_attrs = {kv.key: kv.value.string_value for kv in resource.attributes}
        assert resource_attrs["service.name"] == "rag-api"
        assert resource_attrs["openinference.project.name"] == "rotel-hop"
    received = sample(gateway.registry, "otel_llm_gateway_received_total", transport=hop)
    assert received == len(spans)  # rotel's hop really went over ``hop``
