"""A real trace store behind the gateway: SDK OTLP exporter → gateway → Arize Phoenix.

Phoenix (PyPI ``arize-phoenix``) runs from its own venv on 127.0.0.1 (``tests/backends.py``).
What its REST API then returns must carry the gateway's cost, as the core prices the call, and
every attribute the client set; spans that are not LLM calls get nothing added. The last test
puts a collector (rotel) in front of the gateway, run as ``otel-llm serve``: the README's
app → collector → gateway → backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client.parser import text_string_to_metric_families

from otel_llm.gateway import Gateway
from tests.backends import (
    GatewayProcess,
    Phoenix,
    Rotel,
    expected_cost_usd,
    export_spans,
    llm_trace,
    span_id_hex,
    trace_id_hex,
)
from tests.gateway.gateway_support import sample, wait_until

pytest_plugins = ["tests.backends"]


def _project() -> str:
    return f"otel-llm-{uuid.uuid4().hex[:12]}"


def check_enriched_in_phoenix(
    sent: Sequence[ReadableSpan], stored: Sequence[dict[str, Any]]
) -> None:
    """``stored`` (Phoenix REST spans) are ``sent`` as the gateway enriched them."""
    by_id = {span["context"]["span_id"]: span for span in stored}
    assert sorted(by_id) == sorted(span_id_hex(span) for span in sent)
    assert len(stored) == len(sent)  # each once
    cost = expected_cost_usd()
    for span in sent:
        got = by_id[span_id_hex(span)]
        original = dict(span.attributes or {})
        assert got["name"] == span.name
        assert got["context"]["trace_id"] == trace_id_hex(span)
        # Phoenix keeps openinference.span.kind as the span's kind; the rest as attributes
        # (to which it adds its own llm.* mirror of the gen_ai.* ones).
        assert got["span_kind"] == original.pop("openinference.span.kind")
        attrs = got["attributes"]
        assert {k: attrs.get(k) for k in original} == original
        if span.name == "chat gpt-4o-mini":
            assert attrs["otel_llm.cost.usd"] == cost
            assert attrs["gen_ai.usage.cost"] == cost
            assert attrs["otel_llm.cost.source"] == "price_table"
            parts = attrs["otel_llm.cost.input_usd"] + attrs["otel_llm.cost.output_usd"]
            assert parts == pytest.approx(cost, rel=1e-12)
        elif span.name == "chat gpt-4o-mini retry":
            assert got["status_code"] == "ERROR"
            assert attrs["otel_llm.error.category"] == "resource_error"
            assert attrs["otel_llm.error.severity"] == "high"
        else:  # the request span is no LLM call: left alone
            assert [k for k in attrs if k.startswith("otel_llm.")] == []
            assert "gen_ai.usage.cost" not in attrs


@pytest.mark.parametrize(
    ("client", "forward_protocol"),
    [("grpc", "grpc"), ("http", "http/protobuf")],
)
def test_enriched_spans_are_queryable_from_phoenix(
    phoenix: Phoenix,
    make_gateway: Callable[..., Gateway],
    client: str,
    forward_protocol: str,
) -> None:
    """``client``: the SDK exporter into the gateway; ``forward_protocol``: gateway → Phoenix
    (its OTLP/gRPC port, or OTLP/HTTP /v1/traces on its web port)."""
    project = _project()
    forward = phoenix.grpc_endpoint if forward_protocol == "grpc" else phoenix.url
    gateway = make_gateway(forward=forward, forward_protocol=forward_protocol)
    spans = llm_trace(project)
    assert [k for s in spans for k in s.attributes or {} if k.startswith("otel_llm.")] == []

    address = gateway.grpc_address if client == "grpc" else gateway.http_address
    export_spans(client, f"http://{address}", spans)

    check_enriched_in_phoenix(spans, phoenix.wait_for_spans(project, len(spans)))
    # The sink has the spans as soon as it answers; the gateway counts them after it
    # reads that answer.
    assert wait_until(
        lambda: sample(gateway.registry, "otel_llm_gateway_forwarded_total") == len(spans), 10)
    assert sample(gateway.registry, "otel_llm_gateway_dropped_total") == 0


def test_resources_survive_so_phoenix_files_each_trace_under_its_project(
    phoenix: Phoenix, make_gateway: Callable[..., Gateway]
) -> None:
    """Phoenix takes the project from the resource: two through one gateway stay apart."""
    gateway = make_gateway(forward=phoenix.grpc_endpoint)
    traces = {project: llm_trace(project) for project in (_project(), _project())}
    for spans in traces.values():
        export_spans("grpc", f"http://{gateway.grpc_address}", spans)
    for project, spans in traces.items():
        check_enriched_in_phoenix(spans, phoenix.wait_for_spans(project, len(spans)))


def test_app_rotel_gateway_cli_phoenix(
    phoenix: Phoenix,
    make_rotel: Callable[..., Rotel],
    make_gateway_cli: Callable[..., GatewayProcess],
) -> None:
    """The README topology end to end: app → rotel → ``otel-llm serve`` → Phoenix."""
    gateway = make_gateway_cli("--forward", phoenix.grpc_endpoint)
    rotel = make_rotel(forward=f"http://{gateway.http_address}", protocol="http")
    project = _project()
    spans = llm_trace(project)

    export_spans("grpc", rotel.endpoint("grpc"), spans)

    check_enriched_in_phoenix(spans, phoenix.wait_for_spans(project, len(spans)))
    metrics = httpx.get(f"http://{gateway.http_address}/metrics", timeout=10).text
    forwarded = sum(
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "otel_llm_gateway_forwarded_total"
    )
    assert forwarded == len(spans)
    assert gateway.process.stop() == 0  # SIGTERM: drained and exited cleanly
