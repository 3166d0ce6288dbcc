"""Auto-instrumentation of the ``openai`` client (1.40+, 2.x, 3.x): mapping only.

Covered, sync and async, streamed or not: ``chat.completions.create`` (and ``parse``, and the
``stream()`` helper, which calls ``create``), ``completions.create``, ``embeddings.create`` and
``responses.create`` (operation ``chat``, DESIGN.md §8; its ``stream()`` helper calls ``create``).
One CLIENT span per call, carrying the §3 attributes, cost and error category; metrics once.

Streamed Chat Completions and Completions: when the caller did not set ``stream_options``, we
send ``{"include_usage": true}`` so the call gets tokens and cost, and the extra usage-only
chunk (empty ``choices``) is consumed by our wrapper, never seen by the caller. Switch it off
with ``instrument(include_usage=False)`` or ``OTEL_LLM_OPENAI_INCLUDE_USAGE=false`` (for an
OpenAI-compatible server that rejects ``stream_options``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from otel_llm import semconv as sc
from otel_llm.core.errors import classify_attributes
from otel_llm.instrumentation import _content as content
from otel_llm.instrumentation._calls import Call, Kind, wrap
from otel_llm.instrumentation._common import (
    Method,
    Settings,
    TableInstrumentor,
    Wrapper,
    get,
    record_model,
    record_usage,
)
from otel_llm.instrumentation._streams import StreamState
from otel_llm.invocation import Invocation

__all__ = ["OpenAIInstrumentor"]


# --- Chat Completions and Completions ------------------------------------------------------------
class _ChoicesStream(StreamState):
    """Chunks of a streamed Chat Completion (``delta``) or Completion (``text``)."""

    __slots__ = ("capture", "chat", "hide_usage", "last", "reasons", "texts", "tools", "usage")

    def __init__(self, invocation: Invocation, chat: bool, hide_usage: bool,
                 capture: bool) -> None:
        super().__init__(invocation)
        self.chat = chat
        self.hide_usage = hide_usage
        self.capture = capture
        self.last: Any = None
        self.usage: Any = None
        self.reasons: dict[int, str] = {}
        self.texts: dict[int, list[str]] = {}
        self.tools: dict[int, dict[int, dict[str, Any]]] = {}

    def observe(self, chunk: Any) -> bool:
        if self.first:
            self.first = False
            self.invocation.record_first_chunk()
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
        choices = chunk.choices
        if not choices:
            # The usage-only chunk: hidden when it exists only because we asked for it.
            return not (self.hide_usage and usage is not None)
        self.last = chunk
        capture = self.capture
        for choice in choices:
            reason = choice.finish_reason
            if reason:
                self.reasons[choice.index] = reason
            if capture:
                self._accumulate(choice)
        return True

    def _accumulate(self, choice: Any) -> None:
        texts = self.texts.setdefault(choice.index, [])
        if not self.chat:
            texts.append(choice.text or "")
            return
        delta = choice.delta
        if delta is None:
            return
        if delta.content:
            texts.append(delta.content)
        for call in delta.tool_calls or ():
            slot = self.tools.setdefault(choice.index, {}).setdefault(
                call.index, {"id": None, "function": {"name": None, "arguments": ""}}
            )
            slot["id"] = call.id or slot["id"]
            if call.function is not None:
                slot["function"]["name"] = call.function.name or slot["function"]["name"]
                slot["function"]["arguments"] += call.function.arguments or ""

    def complete(self) -> None:
        invocation = self.invocation
        last = self.last
        if last is not None:
            invocation.set_response(
                model=last.model or None,
                finish_reasons=[self.reasons[i] for i in sorted(self.reasons)] or None,
                response_id=last.id or None,
            )
        if self.usage is not None:
            record_usage(invocation, self.usage)
        if self.capture:
            indexes = sorted(set(self.texts) | set(self.reasons))
            if self.chat:
                output = content.chat_output([
                    {"message": {"role": "assistant", "content": "".join(self.texts.get(i, ())),
                                 "tool_calls": list(self.tools.get(i, {}).values())},
                     "finish_reason": self.reasons.get(i)} for i in indexes])
            else:
                output = content.completion_output([
                    {"text": "".join(self.texts.get(i, ())), "finish_reason": self.reasons.get(i)}
                    for i in indexes])
            content.record(invocation, invocation._runtime, sc.GEN_AI_OUTPUT_MESSAGES, output)


def _chat_request(call: Call, kwargs: dict[str, Any]) -> None:
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_INPUT_MESSAGES,
                       content.chat_input(kwargs.get("messages")))


def _reasons(response: Any) -> list[str]:
    return [c.finish_reason for c in getattr(response, "choices", None) or ()
            if isinstance(getattr(c, "finish_reason", None), str)]


def _chat_response(call: Call, response: Any) -> None:
    record_model(call.invocation, response, _reasons(response))
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_OUTPUT_MESSAGES,
                       content.chat_output(list(get(response, "choices") or ())))


def _completion_request(call: Call, kwargs: dict[str, Any]) -> None:
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_INPUT_MESSAGES,
                       content.prompt_input(kwargs.get("prompt")))


def _completion_response(call: Call, response: Any) -> None:
    record_model(call.invocation, response, _reasons(response))
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_OUTPUT_MESSAGES,
                       content.completion_output(list(get(response, "choices") or ())))


# --- Embeddings ----------------------------------------------------------------------------------
def _embeddings_request(call: Call, kwargs: dict[str, Any]) -> None:
    dimensions = kwargs.get("dimensions")
    if isinstance(dimensions, int) and not isinstance(dimensions, bool):
        call.invocation.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, dimensions)


def _embeddings_response(call: Call, response: Any) -> None:
    record_model(call.invocation, response, None)
    data = get(response, "data")
    vector = get(data[0], "embedding") if data else None
    if isinstance(vector, list) and vector:
        call.invocation.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vector))


# --- Responses -----------------------------------------------------------------------------------
def _responses_request(call: Call, kwargs: dict[str, Any]) -> None:
    if call.capture:
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str) and instructions:
            content.record(call.invocation, call.runtime, sc.GEN_AI_SYSTEM_INSTRUCTIONS,
                           [{"type": "text", "content": instructions}])
        content.record(call.invocation, call.runtime, sc.GEN_AI_INPUT_MESSAGES,
                       content.responses_input(kwargs.get("input")))


_INCOMPLETE_REASONS = {"max_output_tokens": "length"}


def _responses_response(call: Call, response: Any) -> None:
    """A Responses ``Response``, from a plain call or a stream's final event."""
    invocation = call.invocation
    output = list(get(response, "output") or ())
    status = get(response, "status")
    if any(get(item, "type") == "function_call" for item in output):
        reason = "tool_call"
    elif status == "completed":
        reason = "stop"
    elif status == "incomplete":
        detail = get(get(response, "incomplete_details"), "reason")
        reason = _INCOMPLETE_REASONS.get(detail, detail or "incomplete")
    else:
        reason = "error" if status == "failed" else str(status or "")
    record_model(invocation, response, [reason] if reason else None)
    error = get(response, "error")
    if error is not None:
        _fail(invocation, error)
    if call.capture:
        content.record(invocation, call.runtime, sc.GEN_AI_OUTPUT_MESSAGES,
                       content.responses_output(output, reason))


def _fail(invocation: Invocation, error: Any) -> None:
    """An error the API reported in a 200 response or stream event, classified by its text."""
    text = f"{get(error, 'code') or ''}: {get(error, 'message') or ''}"
    invocation.fail(classify_attributes({}, status_description=text))


class _ResponsesStream(StreamState):
    """Events of a streamed Response: the final ``response.*`` event carries usage."""

    __slots__ = ("call", "final")

    def __init__(self, call: Call) -> None:
        super().__init__(call.invocation)
        self.call = call
        self.final: Any = None

    def observe(self, event: Any) -> bool:
        kind = event.type
        # The first generated content, not the immediate response.created bookkeeping event.
        if self.first and kind.endswith(".delta"):
            self.first = False
            self.invocation.record_first_chunk()
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
        elif kind == "error":
            _fail(self.invocation, event)
        return True

    def complete(self) -> None:
        if self.final is not None:
            _responses_response(self.call, self.final)


# --- the table -----------------------------------------------------------------------------------
def _stream_types() -> tuple[type, type]:
    from openai import AsyncStream as SDKAsyncStream
    from openai import Stream as SDKStream

    return SDKStream, SDKAsyncStream


def _wrap(kind: Kind, is_async: bool) -> Callable[[Settings], Wrapper]:
    return wrap(kind, is_async, _stream_types)


_CHAT = Kind(sc.OP_CHAT, "openai", _chat_request, _chat_response,
              lambda call: _ChoicesStream(call.invocation, True, call.hide_usage, call.capture),
              include_usage=True)
_CHAT_PARSE = Kind(sc.OP_CHAT, "openai", _chat_request, _chat_response)
_COMPLETION = Kind(
    sc.OP_TEXT_COMPLETION, "openai", _completion_request, _completion_response,
    lambda call: _ChoicesStream(call.invocation, False, call.hide_usage, call.capture),
    include_usage=True)
_EMBEDDINGS = Kind(sc.OP_EMBEDDINGS, "openai", _embeddings_request, _embeddings_response)
_RESPONSES = Kind(sc.OP_CHAT, "openai", _responses_request, _responses_response, _ResponsesStream)

# The one table that drives both instrument and uninstrument.
_METHODS: tuple[Method, ...] = (
    ("openai.resources.chat.completions", "Completions.create", _wrap(_CHAT, False)),
    ("openai.resources.chat.completions", "AsyncCompletions.create", _wrap(_CHAT, True)),
    ("openai.resources.chat.completions", "Completions.parse", _wrap(_CHAT_PARSE, False)),
    ("openai.resources.chat.completions", "AsyncCompletions.parse", _wrap(_CHAT_PARSE, True)),
    ("openai.resources.completions", "Completions.create", _wrap(_COMPLETION, False)),
    ("openai.resources.completions", "AsyncCompletions.create", _wrap(_COMPLETION, True)),
    ("openai.resources.embeddings", "Embeddings.create", _wrap(_EMBEDDINGS, False)),
    ("openai.resources.embeddings", "AsyncEmbeddings.create", _wrap(_EMBEDDINGS, True)),
    ("openai.resources.responses", "Responses.create", _wrap(_RESPONSES, False)),
    ("openai.resources.responses", "AsyncResponses.create", _wrap(_RESPONSES, True)),
)


class OpenAIInstrumentor(TableInstrumentor):
    """Instruments the ``openai`` client.

    ``instrument(tracer_provider=, meter_provider=, capture_content=, include_usage=)``: all
    optional. Without providers each call uses the runtime installed by
    :func:`otel_llm.configure` (else the global providers). ``include_usage`` (default
    True, env ``OTEL_LLM_OPENAI_INCLUDE_USAGE``) requests usage on streams the caller did not
    set ``stream_options`` for.
    """

    _instruments = ("openai >= 1.40",)
    _methods = _METHODS

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._instruments

