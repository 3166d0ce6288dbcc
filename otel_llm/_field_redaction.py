"""Which field names hold secrets, and redacting field values: log extras, error details.

Implementation of :mod:`otel_llm.logging`, which re-exports the public names.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from otel_llm.core.redact import REDACTED, redact

# Words that make a key sensitive wherever they appear in it (split on _ - . and camelCase).
_SENSITIVE_WORDS: Final = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "apikey", "authorization", "cookie",
     "credential", "credentials"}
)
# "token" only as the last word, as in core.redact: access_token is a secret, while
# input_tokens, max_tokens or token_count are usage figures that must stay readable.
_SENSITIVE_LAST: Final = frozenset({"token"})
_SENSITIVE_PAIRS: Final = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
_KEY_PARTS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Nested extras are redacted to this depth; deeper values are replaced, not walked.
_MAX_DEPTH: Final = 6


def is_sensitive_key(key: str) -> bool:
    """Whether a field named ``key`` holds a secret (password, token, api_key, secret, …).

    ``input_tokens`` or ``max_tokens`` are not sensitive; ``access_token``, ``apiKey``,
    ``X-Api-Key``, ``client_secret`` and ``Authorization`` are.
    """
    parts = [p.lower() for p in _KEY_PARTS.findall(key)]
    if any(p in _SENSITIVE_WORDS for p in parts) or (parts and parts[-1] in _SENSITIVE_LAST):
        return True
    return any(pair in _SENSITIVE_PAIRS for pair in itertools.pairwise(parts))


def redact_value(value: object, _depth: int = 0) -> object:
    """A redacted, JSON-safe copy of a log or response field.

    Strings go through ``redact``, values under sensitive keys are replaced, containers are
    walked to a bounded depth, non-finite floats and other objects become (redacted) strings.
    The input is never mutated; never raises.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):  # NaN and infinities are not JSON
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return _redact_mapping(value, _depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    try:
        return redact(str(value))
    except Exception:  # a broken __str__ must not break the logging call that passed it
        return f"<unprintable {type(value).__name__}>"


def _redact_mapping(value: Mapping[Any, object], depth: int = 0) -> dict[str, object]:
    return {
        str(k): REDACTED if is_sensitive_key(str(k)) else redact_value(v, depth + 1)
        for k, v in value.items()
    }
