"""Token usage read from a provider's response object or dict (OpenAI or Anthropic shape).

Pure mapping shared by the ``trace_llm`` decorator and the instrumentors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Usage(NamedTuple):
    """Token usage in the spec's terms: ``input_tokens`` includes the cached ones.

    (A named tuple, built positionally on every call's path: a frozen dataclass costs three
    times more.)
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


_ABSENT = object()


def _get(obj: object, name: str) -> object:
    # On every call's path: a plain dict or an attribute first. ``isinstance(obj, Mapping)`` is
    # an ABC check, and a miss on an SDK's pydantic model raises inside ``__getattr__``: both
    # cost more than the hit they guard.
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    try:
        value = getattr(obj, name, _ABSENT)
    except Exception:  # a hostile __getattr__ on a user's object: treat as absent
        return None
    if value is not _ABSENT:
        return value
    return obj.get(name) if isinstance(obj, Mapping) else None


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None


def usage_from_response(response: object) -> Usage | None:
    """Read ``response.usage`` (or ``response["usage"]``, or a bare usage object).

    Handles OpenAI Chat Completions (``prompt_tokens``/``completion_tokens`` with
    ``prompt_tokens_details.cached_tokens``), OpenAI Responses (``input_tokens`` with
    ``input_tokens_details.cached_tokens``) and Anthropic Messages, whose ``input_tokens``
    *exclude* ``cache_read_input_tokens`` and ``cache_creation_input_tokens``: those are summed in.
    Returns None when no usage is present. Never raises.
    """
    usage = _get(response, "usage")
    return read_usage(response if usage is None else usage)


def read_usage(usage: object) -> Usage | None:
    """The :class:`Usage` of a usage object or dict itself (``response.usage``), any shape
    :func:`usage_from_response` knows. Returns None when it holds no token counts."""
    prompt = _int(_get(usage, "prompt_tokens"))
    if prompt is not None:  # OpenAI Chat Completions / legacy completions / embeddings
        prompt_details = _get(usage, "prompt_tokens_details")
        completion_details = _get(usage, "completion_tokens_details")
        return Usage(prompt, _int(_get(usage, "completion_tokens")),
                     _int(_get(prompt_details, "cached_tokens")) or 0, 0,
                     _int(_get(completion_details, "reasoning_tokens")) or 0)
    input_tokens = _int(_get(usage, "input_tokens"))
    output_tokens = _int(_get(usage, "output_tokens"))
    if input_tokens is None and output_tokens is None:
        return None
    anthropic_read = _int(_get(usage, "cache_read_input_tokens"))
    anthropic_write = _int(_get(usage, "cache_creation_input_tokens"))
    if anthropic_read is not None or anthropic_write is not None:
        read, write = anthropic_read or 0, anthropic_write or 0
        return Usage((input_tokens or 0) + read + write, output_tokens, read, write, 0)
    # OpenAI Responses API
    return Usage(input_tokens, output_tokens,
                 _int(_get(_get(usage, "input_tokens_details"), "cached_tokens")) or 0, 0,
                 _int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")) or 0)
