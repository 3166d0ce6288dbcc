"""The protobuf wire form of OTLP spans, as the enrich processor reads and extends it.

Going through upb's message objects costs about 0.5 µs an attribute key and 1.5 µs a value: more
than decoding and re-encoding the whole span. So the enrich processor parses requests with a
*wire view* of ``trace.proto``, :data:`TraceRequest`: the same field numbers and wire types,
but a span's attributes, events and links, and the resource and scope, stay encoded
(``bytes``). Parsing that view is about 0.5 µs a span, serializing it gives back the very bytes
received (fields are written in field-number order, as every OTLP exporter writes them), and
appending attributes is merging their encoding into the span (protobuf merge appends to
repeated fields).

:class:`AttributeReader` turns a span's encoded attributes into the ``{key: value}`` dict
:func:`otel_llm.core.normalize.normalize` reads, converting only the keys it reads. Attributes
repeat from span to span (models, providers, operations, small counts), so decoded entries are
memoized per encoded bytes, with a bounded memory.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otel_llm.core.enrich import WRITTEN_KEYS, AttributeValue
from otel_llm.core.normalize import READ_KEYS, READ_PREFIXES

__all__ = ("TraceRequest", "AttributeReader", "encode_span_attributes", "any_value")


# --- the wire view of trace.proto ---------------------------------------------------------------


def _wire_view() -> type[Message]:
    F = descriptor_pb2.FieldDescriptorProto
    opaque, text, nested = F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_MESSAGE
    proto = descriptor_pb2.FileDescriptorProto(
        name="otel_llm/gateway/trace_wire.proto", package="otel_llm.wire", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, bool]) -> None:
        m = proto.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            f = m.field.add(name=field_name, number=number, type=kind)
            f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if kind == nested:
                f.type_name = {"spans": ".otel_llm.wire.Span", "status": ".otel_llm.wire.Status",
                               "scope_spans": ".otel_llm.wire.ScopeSpans",
                               "resource_spans": ".otel_llm.wire.ResourceSpans"}[field_name]

    # Numbers and wire types as in opentelemetry/proto/trace/v1/trace.proto.
    message("Status", ("message", 2, text, False), ("code", 3, F.TYPE_INT32, False))
    message(
        "Span",
        ("trace_id", 1, opaque, False), ("span_id", 2, opaque, False),
        ("trace_state", 3, text, False), ("parent_span_id", 4, opaque, False),
        ("name", 5, text, False), ("kind", 6, F.TYPE_INT32, False),
        ("start_time_unix_nano", 7, F.TYPE_FIXED64, False),
        ("end_time_unix_nano", 8, F.TYPE_FIXED64, False),
        ("attributes", 9, opaque, True), ("dropped_attributes_count", 10, F.TYPE_UINT32, False),
        ("events", 11, opaque, True), ("dropped_events_count", 12, F.TYPE_UINT32, False),
        ("links", 13, opaque, True), ("dropped_links_count", 14, F.TYPE_UINT32, False),
        ("status", 15, nested, False), ("flags", 16, F.TYPE_FIXED32, False),
    )
    message("ScopeSpans", ("scope", 1, opaque, False), ("spans", 2, nested, True),
            ("schema_url", 3, text, False))
    message("ResourceSpans", ("resource", 1, opaque, False), ("scope_spans", 2, nested, True),
            ("schema_url", 3, text, False))
    message("TraceRequest", ("resource_spans", 1, nested, True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("otel_llm.wire.TraceRequest"))


TraceRequest: Final = _wire_view()
"""``ExportTraceServiceRequest`` with attributes, events, links, resource and scope left encoded."""


# --- reading attributes -------------------------------------------------------------------------

_SCALARS: Final = frozenset(
    ("string_value", "bool_value", "int_value", "double_value", "bytes_value")
)
_DOUBLE: Final = struct.Struct("<d")
_MISS: Final = object()
# Keys are short: an entry whose key length needs a second varint byte is decoded by upb.
_NAMES: Final = READ_KEYS | WRITTEN_KEYS
_KEYS: Final = {key.encode(): key for key in _NAMES}
_PREFIXES: Final = tuple(prefix.encode() for prefix in READ_PREFIXES)


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``: scalars as is, arrays as tuples (as the SDK
    holds them), maps and unset values as None."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind != "array_value":
        return None
    return tuple(any_value(item) for item in value.array_value.values)


class AttributeReader:
    """Encoded ``KeyValue`` entries to the dict normalize reads; thread-safe.

    Only keys normalize reads (and those the enrich processor would write, to know whether a span
    has them already) are decoded. Decoded entries are memoized by their encoded bytes: at most
    ``per_key`` distinct entries of one key (a response id is new on every span: it stops being
    memoized after that many) and ``size`` in all (then the memo starts over).
    """

    def __init__(self, size: int = 16384, per_key: int = 2048) -> None:
        self._size, self._per_key = size, per_key
        self._memo: dict[bytes, tuple[str, Any] | None] = {}
        self._seen: dict[bytes, int] = {}

    def read(self, entries: Sequence[bytes]) -> dict[str, Any]:
        # The common case, all entries memoized, runs in C: map, list and dict.
        found = list(map(self._memo.get, entries, repeat(_MISS)))
        if _MISS in found:
            for i in range(found.index(_MISS), len(found)):
                if found[i] is _MISS:
                    found[i] = self._decode(entries[i])
        return dict(filter(None, found))  # type: ignore[arg-type]

    def _decode(self, entry: bytes) -> tuple[str, Any] | None:
        key, name, value = _split(entry)
        item = None if name is None else (name, value)  # None: a key normalize does not read
        seen = self._seen.get(key, 0)
        if seen < self._per_key:
            if len(self._memo) >= self._size:
                self._memo.clear()
                self._seen.clear()
            self._seen[key] = seen + 1
            self._memo[entry] = item
        return item


def _split(entry: bytes) -> tuple[bytes, str | None, Any]:
    """(encoded key, key if normalize reads it else None, value) of one encoded KeyValue."""
    # The layout every encoder writes: 0x0a keylen key 0x12 valuelen AnyValue.
    if len(entry) > 1 and entry[0] == 0x0A and entry[1] < 0x80:
        end = 2 + entry[1]
        key = entry[2:end]
        name = _KEYS.get(key)
        if name is None:
            if not key.startswith(_PREFIXES):
                return key, None, None
            name = key.decode("utf-8", "replace")
        value = _value(entry, end)
        if value is not _MISS:
            return key, name, value
    try:  # anything else (long keys, odd field order, repeated fields): upb decides
        kv = KeyValue.FromString(entry)
    except DecodeError:
        return entry, None, None
    wanted = kv.key in _NAMES or kv.key.startswith(READ_PREFIXES)
    return kv.key.encode(), (kv.key if wanted else None), any_value(kv.value)


def _value(entry: bytes, at: int) -> Any:
    """The scalar after ``at`` in the common encodings; _MISS for anything else."""
    size = len(entry)
    if at == size:
        return None  # a key without a value
    if entry[at] != 0x12 or at + 2 > size or entry[at + 1] != size - at - 2:
        # Not (value tag, one-byte length, the rest of the entry): let upb decode it. (A longer
        # length's first byte is >= 0x80 and never equals the size of what follows it.)
        return _MISS
    at += 2
    if at == size:
        return None  # an empty AnyValue
    tag = entry[at]
    if tag == 0x0A and at + 1 < size and entry[at + 1] == size - at - 2:  # string_value
        try:
            return entry[at + 2:].decode("utf-8")
        except UnicodeDecodeError:
            return _MISS
    if tag == 0x18:  # int_value: int64 varint, ending exactly at the end of the entry
        n = shift = 0
        byte, end = 0x80, at
        for end in range(at + 1, size):
            byte = entry[end]
            n |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if byte >= 0x80 or end != size - 1 or shift > 70:
            return _MISS
        n &= 0xFFFF_FFFF_FFFF_FFFF
        return n - (1 << 64) if n >= 1 << 63 else n
    if tag == 0x21 and size - at == 9:  # double_value
        return _DOUBLE.unpack_from(entry, at + 1)[0]
    if tag == 0x10 and size - at == 2 and entry[at + 1] < 0x80:  # bool_value
        return entry[at + 1] != 0
    return _MISS


# --- appending attributes -----------------------------------------------------------------------

_SPAN_ATTRIBUTE = b"\x4a"  # Span.attributes = 9, length-delimited
_KEY_TAG = b"\x0a"  # KeyValue.key = 1, length-delimited
_VALUE_TAG = b"\x12"  # KeyValue.value = 2, length-delimited
_STRING = b"\x0a"  # AnyValue.string_value = 1, length-delimited
_BOOL = b"\x10"  # AnyValue.bool_value = 2, varint
_INT = b"\x18"  # AnyValue.int_value = 3, varint (int64: two's complement, 10 bytes if < 0)
_DOUBLE_TAG = b"\x21"  # AnyValue.double_value = 4, 64-bit


def encode_span_attributes(items: Iterable[tuple[str, AttributeValue]]) -> bytes:
    """``Span.attributes`` entries for ``items``, in order, as upb encodes them: bytes that
    ``span.MergeFromString`` appends to a span's attributes (one C call for all of them)."""
    parts: list[bytes] = []
    for key, value in items:
        if type(value) is float:  # the costs: a new value per span, a fixed-size encoding
            prefix = _double_prefixes.get(key)
            if prefix is None:
                prefix = _double_prefixes[key] = _frame(key, _DOUBLE_TAG + bytes(8))[:-8]
            parts.append(prefix + _DOUBLE.pack(value))
        else:  # sources, categories, severities: a handful of distinct entries
            parts.append(_entry(key, type(value).__name__, value))
    return b"".join(parts)


# Everything of a double-valued entry but its 8 value bytes, per key: the keys are our few cost
# attributes (a dict lookup is cheaper than an lru_cache call on this path).
_double_prefixes: dict[str, bytes] = {}


@functools.lru_cache(maxsize=1024)
def _entry(key: str, kind: str, value: AttributeValue) -> bytes:
    del kind  # part of the cache key only: True, 1 and 1.0 are equal as dict keys
    return _frame(key, _any_value(value))


def _frame(key: str, value_bytes: bytes) -> bytes:
    """A ``Span.attributes`` entry: field 9, length-delimited, holding one KeyValue."""
    key_bytes = key.encode("utf-8", "replace")
    entry = (
        _KEY_TAG + _varint(len(key_bytes)) + key_bytes
        + _VALUE_TAG + _varint(len(value_bytes)) + value_bytes
    )
    return _SPAN_ATTRIBUTE + _varint(len(entry)) + entry


def _any_value(value: AttributeValue) -> bytes:
    # bool before int: bool is an int subclass, and OTLP keeps them apart.
    if isinstance(value, bool):
        return _BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _INT + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return _DOUBLE_TAG + _DOUBLE.pack(value)
    data = str(value).encode("utf-8", "replace")  # protobuf strings must be valid UTF-8
    return _STRING + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
