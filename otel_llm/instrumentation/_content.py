"""Prompt and completion content as the GenAI spec's JSON, redacted and within a length cap.

Builds the values of ``gen_ai.input.messages``, ``gen_ai.output.messages`` and
``gen_ai.system_instructions`` (semantic conventions v1.41: messages of ``{"role", "parts"}``,
parts ``text`` / ``tool_call`` / ``tool_call_response`` / ``reasoning``, output messages with a
``finish_reason``) from OpenAI Chat, Completions, Responses and Anthropic Messages shapes, dicts
or SDK models alike. Only called when content capture is on. Every string leaf is redacted
here, and the JSON is kept valid under the cap by shortening leaves rather than cutting the
document. Media (images, audio, files) is recorded by its type only, never its bytes or URL.
"""

from __future__ import annotations

import json
from typing import Any

from otel_llm import _runtime
from otel_llm.core.redact import redact
from otel_llm.instrumentation._common import get, items
from otel_llm.invocation import Invocation

Part = dict[str, Any]
Message = dict[str, Any]
_TRUNCATED = "…[truncated]"


def record(invocation: Invocation, runtime: _runtime.Runtime, key: str, value: list[Any]) -> None:
    """Set ``key`` to the spec JSON of ``value`` (nothing when empty), via ``set_content``."""
    if value:
        invocation.set_content(key, encode(value, runtime.content_max_length))


def encode(value: list[Any], limit: int) -> str:
    """JSON of ``value`` with every string redacted, at most ``limit`` characters, valid JSON.

    Long strings are shortened first (evenly, halving a budget); if the messages alone are
    still too many, the oldest are dropped, so the latest turn is what remains.
    """
    value = _map_strings(value, redact)
    text = _dumps(value)
    budget = limit // 2
    while len(text) > limit and budget >= 32:
        text = _dumps(_map_strings(value, lambda s, b=budget: _cut(s, b)))
        budget //= 2
    if len(text) > limit:
        shortened = _map_strings(value, lambda s: _cut(s, 16))
        while len(shortened) > 1 and len(text) > limit:
            shortened = shortened[1:]
            text = _dumps(shortened)
        if len(text) > limit:
            text = "[]"
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _cut(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[:budget] + _TRUNCATED


def _map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: (v if k in ("type", "role") else _map_strings(v, fn)) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return value


def _text(content: object) -> Part:
    return {"type": "text", "content": content}


def _plain(value: object) -> Any:
    """A JSON-able copy of an SDK model or a user's params (tool arguments, tool results)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


# --- OpenAI Chat Completions and Completions ---------------------------------------------------
def _openai_parts(content: object) -> list[Part]:
    if isinstance(content, str):
        return [_text(content)]
    parts: list[Part] = []
    for item in items(content):
        kind = get(item, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(_text(get(item, "text")))
        elif kind == "refusal":
            parts.append(_text(get(item, "refusal")))
        elif isinstance(kind, str):
            parts.append({"type": kind})  # image_url, input_audio, file: type only
    return parts


def _tool_calls(calls: object) -> list[Part]:
    parts: list[Part] = []
    for call in items(calls):
        function = get(call, "function") or {}
        parts.append({"type": "tool_call", "id": get(call, "id"), "name": get(function, "name"),
                      "arguments": get(function, "arguments")})
    return parts


def chat_input(messages: object) -> list[Message]:
    """``gen_ai.input.messages`` of a Chat Completions request (system messages included)."""
    out: list[Message] = []
    for message in items(messages):
        role = get(message, "role")
        content = get(message, "content")
        if role in ("tool", "function"):
            call_id = get(message, "tool_call_id") or get(message, "name")
            parts: list[Part] = [{"type": "tool_call_response", "id": call_id,
                                  "response": _plain(content)}]
        else:
            parts = _openai_parts(content) if content is not None else []
            parts += _tool_calls(get(message, "tool_calls"))
        out.append({"role": role, "parts": parts})
    return out


def chat_output(choices: list[Any]) -> list[Message]:
    """``gen_ai.output.messages`` of Chat Completions choices (or accumulated stream choices)."""
    out: list[Message] = []
    for choice in choices:
        message = get(choice, "message") or {}
        parts: list[Part] = []
        for key in ("content", "refusal"):
            if isinstance(text := get(message, key), str):
                parts.append(_text(text))
        parts += _tool_calls(get(message, "tool_calls"))
        out.append({"role": get(message, "role") or "assistant", "parts": parts,
                    "finish_reason": get(choice, "finish_reason") or ""})
    return out


def prompt_input(prompt: object) -> list[Message]:
    """``gen_ai.input.messages`` of a legacy Completions prompt (token lists are skipped)."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    texts = [p for p in prompts if isinstance(p, str)] if isinstance(prompts, list) else []
    return [{"role": "user", "parts": [_text(t) for t in texts]}] if texts else []


def completion_output(choices: list[Any]) -> list[Message]:
    return [{"role": "assistant", "parts": [_text(get(c, "text") or "")],
             "finish_reason": get(c, "finish_reason") or ""} for c in choices]


# --- OpenAI Responses ----------------------------------------------------------------------------
def responses_input(value: object) -> list[Message]:
    """``gen_ai.input.messages`` of a Responses ``input`` (a string or a list of items)."""
    if isinstance(value, str):
        return [{"role": "user", "parts": [_text(value)]}]
    out: list[Message] = []
    for item in items(value):
        kind = get(item, "type")
        if kind == "function_call":
            out.append({"role": "assistant", "parts": [_responses_call(item)]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "parts": [{"type": "tool_call_response",
                                                   "id": get(item, "call_id"),
                                                   "response": _plain(get(item, "output"))}]})
        elif get(item, "role") is not None:
            out.append({"role": get(item, "role"),
                        "parts": _openai_parts(get(item, "content") or [])})
    return out


def _responses_call(item: object) -> Part:
    return {"type": "tool_call", "id": get(item, "call_id"), "name": get(item, "name"),
            "arguments": get(item, "arguments")}


def responses_output(output: list[Any], finish_reason: str) -> list[Message]:
    parts: list[Part] = []
    for item in output:
        kind = get(item, "type")
        if kind == "message":
            parts += _openai_parts(get(item, "content") or [])
        elif kind == "function_call":
            parts.append(_responses_call(item))
        elif kind == "reasoning":
            for summary in get(item, "summary") or ():
                parts.append({"type": "reasoning", "content": get(summary, "text")})
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason}]


# --- Anthropic Messages --------------------------------------------------------------------------
def anthropic_parts(blocks: object) -> list[Part]:
    """Parts of an Anthropic ``content`` (a string or content blocks)."""
    if isinstance(blocks, str):
        return [_text(blocks)]
    parts: list[Part] = []
    for block in items(blocks):
        kind = get(block, "type")
        if kind == "text":
            parts.append(_text(get(block, "text")))
        elif kind == "tool_use":
            parts.append({"type": "tool_call", "id": get(block, "id"), "name": get(block, "name"),
                          "arguments": _plain(get(block, "input"))})
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": get(block, "tool_use_id"),
                          "response": _plain(get(block, "content"))})
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": get(block, "thinking")})
        elif isinstance(kind, str):
            parts.append({"type": kind})  # image, document, redacted_thinking: type only
    return parts


def anthropic_input(messages: object) -> list[Message]:
    return [{"role": get(m, "role"), "parts": anthropic_parts(get(m, "content"))}
            for m in items(messages)]


def anthropic_output(blocks: object, stop_reason: object) -> list[Message]:
    return [{"role": "assistant", "parts": anthropic_parts(blocks),
             "finish_reason": stop_reason if isinstance(stop_reason, str) else ""}]
