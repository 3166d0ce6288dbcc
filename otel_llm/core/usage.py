"""Token usage read from a provider's response object or dict (OpenAI or Anthropic shape).

Pure mapping shared by the ``trace_llm`` decorator and the instrumentors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage in the spec's terms: ``input_tokens`` includes the cached ones."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


def _get(obj: object, name: str) -> object:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # a hostile __getattr__ on a user's object: treat as absent
        return None


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
    if usage is None:
        usage = response
    prompt = _int(_get(usage, "prompt_tokens"))
    if prompt is not None:  # OpenAI Chat Completions / legacy completions / embeddings
        return Usage(
            input_tokens=prompt,
            output_tokens=_int(_get(usage, "completion_tokens")),
            cache_read_tokens=_int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
            or 0,
            reasoning_tokens=_int(
                _get(_get(usage, "completion_tokens_details"), "reasoning_tokens")
            )
            or 0,
        )
    input_tokens = _int(_get(usage, "input_tokens"))
    output_tokens = _int(_get(usage, "output_tokens"))
    if input_tokens is None and output_tokens is None:
        return None
    anthropic_read = _int(_get(usage, "cache_read_input_tokens"))
    anthropic_write = _int(_get(usage, "cache_creation_input_tokens"))
    if anthropic_read is not None or anthropic_write is not None:
        read, write = anthropic_read or 0, anthropic_write or 0
        return Usage(
            input_tokens=(input_tokens or 0) + read + write,
            output_tokens=output_tokens,
            cache_read_tokens=read,
            cache_creation_tokens=write,
        )
    # OpenAI Responses API
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=_int(_get(_get(usage, "input_tokens_details"), "cached_tokens")) or 0,
        reasoning_tokens=_int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens"))
        or 0,
    )
