"""The enrich processor on encoded requests: what it adds, what it leaves, what it accounts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm.accounting import Accountant
from otel_llm.core.normalize import normalize
from otel_llm.core.types import CallRecord
from otel_llm.gateway.component import Batch, RetryableError
from otel_llm.gateway.enrich import EnrichProcessor, enrich_request
from otel_llm.gateway.wire import AttributeReader, any_value, encode_span_attributes
from tests.gateway.gateway_support import (
    FAILED,
    HTTP_ONLY,
    OFFICIAL,
    OPENINFERENCE,
    OPENLLMETRY,
    attributes,
    make_request,
    make_span,
)

CONVENTIONS = {
    "official": OFFICIAL,
    "openllmetry": OPENLLMETRY,
    "openinference": OPENINFERENCE,
    "failed": FAILED,
    "openlit": {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet-20241022",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cache_read_input_tokens": 50,
        "telemetry.sdk.name": "openlit",
    },
    "retrieval": {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "a",
        "retrieval.documents.1.document.id": "b",
        "db.system": "chroma",
    },
    "priced": {**OFFICIAL, "otel_llm.cost.usd": 1.5, "otel_llm.cost.source": "override"},
    "agent": {"openinference.span.kind": "AGENT", "llm.model_name": "gpt-4o"},
}


class Accepting:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


class Refusing:
    def consume(self, batch: Batch) -> None:
        raise RetryableError("full", reason="queue_full")


@pytest.fixture
def accountant() -> tuple[Accountant, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return Accountant(meter_provider=MeterProvider(metric_readers=[reader])), reader


def _cost_points(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    points: list[Any] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "otel_llm.cost":
                    points.extend(metric.data.data_points)
    return points


def _enrich(
    request: ExportTraceServiceRequest, acc: Accountant
) -> tuple[list[CallRecord], int]:
    """enrich_request on the encoded request; ``request`` then holds what would be forwarded."""
    result = enrich_request(request.SerializeToString(), acc)
    if result.payload is not None:
        request.ParseFromString(result.payload)
    return result.records, result.changed


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_the_reader_keeps_everything_normalize_reads(name: str) -> None:
    span = make_span("chat x", {**CONVENTIONS[name], **HTTP_ONLY, "user.id": "u1"})
    full = {kv.key: any_value(kv.value) for kv in span.attributes}
    read = AttributeReader().read([kv.SerializeToString() for kv in span.attributes])
    assert set(read) < set(full)
    assert normalize(read, span_name=span.name) == normalize(full, span_name=span.name)


def test_adds_cost_and_category_and_nothing_else(accountant: tuple[Accountant, Any]) -> None:
    acc, _ = accountant
    http = make_span("GET /", HTTP_ONLY)
    spans = [make_span("chat gpt-4o", OFFICIAL), make_span("chat gpt-4o", FAILED, error=True), http]
    request = make_request(*spans)
    http_before = http.SerializeToString()
    resource_before = request.resource_spans[0].resource.SerializeToString()
    records, changed = _enrich(request, acc)
    assert changed == 2 and len(records) == 2
    official, failed, untouched = request.resource_spans[0].scope_spans[0].spans
    assert attributes(official)["otel_llm.cost.usd"] > 0
    assert attributes(official)["otel_llm.cost.source"] == "price_table"
    assert attributes(failed)["otel_llm.error.category"] == "resource_error"
    assert untouched.SerializeToString() == http_before
    assert request.resource_spans[0].resource.SerializeToString() == resource_before
    record = records[0]
    assert record.trace_id == official.trace_id.hex() and record.span_id == official.span_id.hex()
    assert record.service == "rag-api" and record.end_time_s == pytest.approx(1_700_000_001.5)
    assert record.call.duration_s == pytest.approx(1.5)


def test_existing_cost_is_kept(accountant: tuple[Accountant, Any]) -> None:
    acc, _ = accountant
    request = make_request(make_span("chat gpt-4o", CONVENTIONS["priced"]))
    records, changed = _enrich(request, acc)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert attributes(span)["otel_llm.cost.usd"] == 1.5
    assert attributes(span)["otel_llm.cost.source"] == "override"
    assert records[0].cost is not None and records[0].cost.total_usd == 1.5
    assert [kv.key for kv in span.attributes].count("otel_llm.cost.usd") == 1
    assert changed == 1  # gen_ai.usage.cost was missing: added with the same figure
    assert attributes(span)["gen_ai.usage.cost"] == 1.5


@pytest.mark.parametrize("tokens", [-5, 10**13, 2**63 - 1, -(2**63)])
def test_absurd_token_counts_do_not_break_anything(
    accountant: tuple[Accountant, Any], tokens: int
) -> None:
    acc, _ = accountant
    attrs = {**OFFICIAL, "gen_ai.usage.input_tokens": tokens, "gen_ai.usage.output_tokens": tokens}
    request = make_request(make_span("chat gpt-4o", attrs))
    records, _ = _enrich(request, acc)
    assert records[0].call.input_tokens is None and records[0].call.output_tokens is None
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert "otel_llm.cost.usd" not in attributes(span)  # not priced from nonsense


def test_odd_values_are_tolerated(accountant: tuple[Accountant, Any]) -> None:
    acc, _ = accountant
    span = make_span(
        "chat gpt-4o", {**OFFICIAL, "gen_ai.response.finish_reasons": ["stop", "length"]}
    )
    span.attributes.add(key="gen_ai.request.model")  # empty AnyValue: a duplicate key, no value
    span.attributes.add(key="gen_ai.usage.cost").value.kvlist_value.values.add(key="x")
    request = make_request(span)
    records, _ = _enrich(request, acc)
    assert len(records) == 1


def test_accounts_once_and_only_after_the_next_stage_accepted(
    accountant: tuple[Accountant, InMemoryMetricReader],
) -> None:
    acc, reader = accountant
    request = make_request(make_span("chat gpt-4o", OFFICIAL))
    refused = EnrichProcessor(Refusing(), acc)
    with pytest.raises(RetryableError):
        refused.consume(Batch("traces", request, 1, request.SerializeToString()))
    assert _cost_points(reader) == []
    sink = Accepting()
    fresh = make_request(make_span("chat gpt-4o", OFFICIAL))
    EnrichProcessor(sink, acc).consume(Batch("traces", fresh, 1, fresh.SerializeToString()))
    [point] = _cost_points(reader)
    assert point.value > 0
    forwarded = ExportTraceServiceRequest.FromString(sink.batches[0].encoded())
    assert "otel_llm.cost.usd" in attributes(forwarded.resource_spans[0].scope_spans[0].spans[0])
    assert sink.batches[0].message == forwarded  # the message follows the replaced payload


def test_disabled_or_other_signals_pass_untouched(accountant: tuple[Accountant, Any]) -> None:
    acc, _ = accountant
    request = make_request(make_span("chat gpt-4o", OFFICIAL))
    payload = request.SerializeToString()
    sink = Accepting()
    EnrichProcessor(sink, acc, enabled=False).consume(Batch("traces", request, 1, payload))
    assert sink.batches[0].encoded() == payload


def test_a_bug_on_one_span_loses_nothing(
    accountant: tuple[Accountant, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    acc, _ = accountant
    import otel_llm.gateway.enrich as enrich_module

    calls = {"n": 0}
    real = enrich_module.normalize

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(enrich_module, "normalize", flaky)
    request = make_request(make_span("chat gpt-4o", OFFICIAL), make_span("chat gpt-4o", OFFICIAL))
    records, changed = _enrich(request, acc)
    assert len(records) == 1 and changed == 1


VALUES = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=40)
)


@settings(max_examples=200, deadline=None, database=None)
@given(items=st.lists(st.tuples(st.text(min_size=1, max_size=30), VALUES), max_size=6))
def test_hand_encoded_attributes_are_what_upb_encodes(items: list[tuple[str, Any]]) -> None:
    expected = Span(name="s")
    for key, value in items:
        target = expected.attributes.add(key=key).value
        if isinstance(value, bool):
            target.bool_value = value
        elif isinstance(value, int):
            target.int_value = value
        elif isinstance(value, float):
            target.double_value = value
        else:
            target.string_value = value
    encoded = encode_span_attributes(items)
    assert encoded == Span(attributes=expected.attributes).SerializeToString()
    merged = Span(name="s")
    merged.MergeFromString(encoded)
    assert merged.SerializeToString() == expected.SerializeToString()
