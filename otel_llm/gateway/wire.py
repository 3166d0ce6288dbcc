"""Protobuf wire encoding of the attributes the enrich processor appends to a span.

Appending through upb objects (``span.attributes.add()``, then setting key and value) costs
about 2-3 µs an attribute, as much as decoding and re-encoding the whole span. Parsing bytes
into an existing message appends to its repeated fields (protobuf merge semantics), so the new
``KeyValue`` entries are encoded here and merged with one ``span.MergeFromString(...)`` call.
The encoding is the one upb produces; ``tests/gateway/test_gateway_enrich.py`` checks that.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

from otel_llm.core.enrich import AttributeValue

__all__ = ("encode_span_attributes",)

# Field tags: (field number << 3) | wire type.
_SPAN_ATTRIBUTES = b"\x4a"  # Span.attributes = 9, length-delimited
_KEY = b"\x0a"  # KeyValue.key = 1, length-delimited
_VALUE = b"\x12"  # KeyValue.value = 2, length-delimited
_STRING = b"\x0a"  # AnyValue.string_value = 1, length-delimited
_BOOL = b"\x10"  # AnyValue.bool_value = 2, varint
_INT = b"\x18"  # AnyValue.int_value = 3, varint (int64: two's complement, 10 bytes if < 0)
_DOUBLE = b"\x21"  # AnyValue.double_value = 4, 64-bit
_DOUBLE_FORMAT = struct.Struct("<d")


def encode_span_attributes(items: Iterable[tuple[str, AttributeValue]]) -> bytes:
    """Serialized ``Span`` bytes holding only ``attributes`` entries for ``items``, in order."""
    parts: list[bytes] = []
    for key, value in items:
        if type(value) is float:  # the costs: a new value per span, a fixed-size encoding
            parts.append(_double_prefix(key) + _DOUBLE_FORMAT.pack(value))
        else:  # sources, categories, severities: a handful of distinct entries
            parts.append(_entry(key, type(value).__name__, value))
    return b"".join(parts)


@functools.lru_cache(maxsize=256)
def _double_prefix(key: str) -> bytes:
    """Everything of a double-valued entry but its 8 value bytes."""
    return _frame(key, _DOUBLE + bytes(8))[:-8]


@functools.lru_cache(maxsize=1024)
def _entry(key: str, kind: str, value: AttributeValue) -> bytes:
    del kind  # part of the cache key only: True, 1 and 1.0 are equal as dict keys
    return _frame(key, _any_value(value))


def _frame(key: str, value_bytes: bytes) -> bytes:
    key_bytes = key.encode("utf-8", "replace")
    entry = (
        _KEY
        + _varint(len(key_bytes))
        + key_bytes
        + _VALUE
        + _varint(len(value_bytes))
        + value_bytes
    )
    return _SPAN_ATTRIBUTES + _varint(len(entry)) + entry


def _any_value(value: AttributeValue) -> bytes:
    # bool before int: bool is an int subclass, and OTLP keeps them apart.
    if isinstance(value, bool):
        return _BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _INT + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return _DOUBLE + _DOUBLE_FORMAT.pack(value)
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
