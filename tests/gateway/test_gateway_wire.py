"""The wire view of trace requests: byte-for-byte round trips, and the attribute reader."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otel_llm.accounting import Accountant
from otel_llm.core.enrich import WRITTEN_KEYS
from otel_llm.core.normalize import READ_KEYS
from otel_llm.gateway.enrich import enrich_request
from otel_llm.gateway.wire import AttributeReader, TraceRequest, any_value
from tests.gateway.gateway_support import HTTP_ONLY, OFFICIAL, make_span


def rich_request() -> ExportTraceServiceRequest:
    """Every field of trace.proto set somewhere, GenAI and other spans, two resources."""
    request = ExportTraceServiceRequest()
    for service in ("rag-api", "other"):
        rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.30.0")
        rs.resource.attributes.add(key="service.name").value.string_value = service
        rs.resource.dropped_attributes_count = 1
        for scope_name in ("opentelemetry.instrumentation.openai_v2", "app"):
            ss = rs.scope_spans.add(schema_url="https://example.test/s")
            ss.scope.name, ss.scope.version = scope_name, "1.2.3"
            ss.scope.attributes.add(key="scope.attr").value.int_value = 7
            for attrs in (OFFICIAL, HTTP_ONLY):
                span = make_span("chat gpt-4o" if attrs is OFFICIAL else "GET /", attrs)
                span.trace_state = "vendor=1"
                span.flags = 0x301
                span.dropped_attributes_count, span.dropped_events_count = 2, 3
                span.dropped_links_count = 4
                event = span.events.add(name="gen_ai.choice", time_unix_nano=5)
                event.attributes.add(key="index").value.int_value = 0
                link = span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, flags=1)
                link.attributes.add(key="why").value.string_value = "retry"
                span.status.message, span.status.code = "fine", 1
                ss.spans.append(span)
    return request


def test_the_wire_view_gives_back_the_bytes_it_read() -> None:
    payload = rich_request().SerializeToString()
    assert TraceRequest.FromString(payload).SerializeToString() == payload


def test_enrichment_appends_attributes_and_changes_nothing_else() -> None:
    before = rich_request()
    result = enrich_request(before.SerializeToString(), Accountant())
    assert result.payload is not None and result.changed == 4 and len(result.records) == 4
    after = ExportTraceServiceRequest.FromString(result.payload)
    for rs_before, rs_after in zip(before.resource_spans, after.resource_spans, strict=True):
        assert rs_before.resource == rs_after.resource
        for ss_before, ss_after in zip(rs_before.scope_spans, rs_after.scope_spans, strict=True):
            assert ss_before.scope == ss_after.scope
            for old, new in zip(ss_before.spans, ss_after.spans, strict=True):
                n = len(old.attributes)
                assert list(new.attributes)[:n] == list(old.attributes)
                added = {kv.key for kv in list(new.attributes)[n:]}
                assert bool(added) == (old.name == "chat gpt-4o")
                assert added <= WRITTEN_KEYS
                del new.attributes[n:]
                assert new.SerializeToString() == old.SerializeToString()


# --- the attribute reader -----------------------------------------------------------------------

_KEYS = st.one_of(
    st.sampled_from(sorted(READ_KEYS | WRITTEN_KEYS)),
    st.builds(lambda i, tail: f"retrieval.documents.{i}.{tail}", st.integers(0, 30),
              st.sampled_from(["document.id", "document.score"])),
    st.sampled_from(["http.route", "gen_ai.response.id", "user.id", ""]),
    st.text(max_size=140),  # long keys take a length of two varint bytes
)
_SCALARS = st.one_of(
    st.text(max_size=200), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(),
    st.binary(max_size=20),
)


def _any_value(draw: Any, depth: int = 0) -> AnyValue:
    value = AnyValue()
    kind = draw(st.sampled_from(["scalar", "scalar", "scalar", "array", "kvlist", "empty"]))
    if kind == "scalar":
        scalar = draw(_SCALARS)
        field = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value",
                 bytes: "bytes_value"}[type(scalar)]
        setattr(value, field, scalar)
    elif kind == "array" and depth < 2:
        for _ in range(draw(st.integers(0, 3))):
            value.array_value.values.append(_any_value(draw, depth + 1))
    elif kind == "kvlist" and depth < 2:
        value.kvlist_value.values.add(key="k").value.CopyFrom(_any_value(draw, depth + 1))
    return value


@st.composite
def key_values(draw: Any) -> list[KeyValue]:
    entries = []
    for _ in range(draw(st.integers(0, 8))):
        kv = KeyValue(key=draw(_KEYS))
        if draw(st.integers(0, 9)):  # now and then a key without a value
            kv.value.CopyFrom(_any_value(draw))
        entries.append(kv)
    return entries


def _wanted(key: str) -> bool:
    return key in READ_KEYS or key in WRITTEN_KEYS or key.startswith(
        ("retrieval.documents.", "reranker.output_documents.")
    )


@settings(max_examples=300, deadline=None, database=None)
@given(entries=key_values())
def test_the_reader_decodes_what_upb_decodes(entries: list[KeyValue]) -> None:
    expected = {kv.key: any_value(kv.value) for kv in entries if _wanted(kv.key)}
    encoded = [kv.SerializeToString() for kv in entries]
    reader = AttributeReader()
    first, again = reader.read(encoded), reader.read(encoded)  # the second from the memo
    for got in (first, again):
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == value or (value != value and got[key] != got[key])  # NaN


def test_entries_in_an_unusual_layout_are_decoded_by_upb() -> None:
    # Value before key, and an overlong length: both valid protobuf no encoder of ours writes.
    value = AnyValue(int_value=1200).SerializeToString()
    key = b"gen_ai.usage.input_tokens"
    reordered = b"\x12" + bytes([len(value)]) + value + b"\x0a" + bytes([len(key)]) + key
    overlong = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([0x80 | len(value), 0]) + value
    for entry in (reordered, overlong):
        assert KeyValue.FromString(entry).value.int_value == 1200
        assert AttributeReader().read([entry]) == {"gen_ai.usage.input_tokens": 1200}


def test_the_memo_is_bounded_overall_and_per_key() -> None:
    reader = AttributeReader(size=50, per_key=5)
    ids = [KeyValue(key="gen_ai.response.id", value=AnyValue(string_value=f"r{i}"))
           for i in range(20)]
    models = [KeyValue(key="gen_ai.request.model", value=AnyValue(string_value=f"m{i}"))
              for i in range(200)]
    for kv in ids:
        assert reader.read([kv.SerializeToString()]) == {}
    assert len(reader._memo) == 5  # a key with a new value on every span stops being memoized
    reader = AttributeReader(size=50, per_key=1000)
    for kv in models:
        model = kv.value.string_value
        assert reader.read([kv.SerializeToString()]) == {"gen_ai.request.model": model}
        assert len(reader._memo) <= 50  # full: it starts over


def test_a_span_without_attributes_reads_empty() -> None:
    assert AttributeReader().read([]) == {}


def test_a_request_the_wire_view_cannot_parse_is_forwarded_as_is() -> None:
    # Cannot happen after the receivers' full decode; if it ever did, nothing is lost.
    accountant = Accountant()
    result = enrich_request(b"\x0a\xff", accountant)  # truncated
    assert result == (None, [], 0)
