"""Auto-instrumentation of the ``anthropic`` client (0.40+, 1.x, 2.x): mapping only.

Covered, sync and async: ``messages.create`` (streamed or not) and the ``messages.stream()``
helper (whose ``text_stream``, ``get_final_message()`` and ``until_done()`` keep working: they
read the raw stream through our wrapper). Anthropic reports cache reads and writes apart from
``input_tokens``; the core sums them in (DESIGN.md §3), so cost never counts a token twice.

anthropic 2.x traces itself (``anthropic.messages.create`` CLIENT spans through the global or
the client's tracer provider). Our span is current while the SDK's starts, so the SDK's span is
its child and :class:`~otel_llm.LLMSpanProcessor` skips it: one call is accounted once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from otel_llm import semconv as sc
from otel_llm.instrumentation import _content as content
from otel_llm.instrumentation._calls import Call, Kind, open_call, wrap
from otel_llm.instrumentation._common import (
    Method,
    Settings,
    TableInstrumentor,
    Wrapper,
    get,
    internal_error,
    record_model,
    record_usage,
)
from otel_llm.instrumentation._streams import AsyncStream, StreamState, SyncStream

__all__ = ["AnthropicInstrumentor"]

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens")


def _request(call: Call, kwargs: dict[str, Any]) -> None:
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_SYSTEM_INSTRUCTIONS,
                       content.anthropic_parts(kwargs.get("system")))
        content.record(call.invocation, call.runtime, sc.GEN_AI_INPUT_MESSAGES,
                       content.anthropic_input(kwargs.get("messages")))


def _response(call: Call, message: Any) -> None:
    reason = getattr(message, "stop_reason", None)
    record_model(call.invocation, message, [reason] if isinstance(reason, str) else None)
    if call.capture:
        content.record(call.invocation, call.runtime, sc.GEN_AI_OUTPUT_MESSAGES,
                       content.anthropic_output(get(message, "content"),
                                                get(message, "stop_reason")))


class _MessageStream(StreamState):
    """Raw Messages stream events: ``message_start`` has the id, model and input usage,
    ``message_delta`` the stop reason and the final output usage."""

    __slots__ = ("blocks", "call", "message_id", "model", "stop_reason", "usage")

    def __init__(self, call: Call) -> None:
        super().__init__(call.invocation)
        self.call = call
        self.model: str | None = None
        self.message_id: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.blocks: dict[int, dict[str, Any]] = {}

    def observe(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            # The first generated content, not message_start's bookkeeping.
            if self.first:
                self.first = False
                self.invocation.record_first_chunk()
            if self.call.capture:
                self._delta(event.index, event.delta)
        elif kind == "message_start":
            message = event.message
            self.model, self.message_id = message.model, message.id
            self._usage(message.usage)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._usage(event.usage)
        elif kind == "content_block_start" and self.call.capture:
            block = event.content_block
            self.blocks[event.index] = {"type": block.type, "id": get(block, "id"),
                                        "name": get(block, "name"), "text": [], "json": []}
        return True

    def _usage(self, usage: Any) -> None:
        # message_delta repeats (cumulative) counts; a field it leaves null keeps its value.
        for name in _USAGE_FIELDS:
            value = getattr(usage, name, None)
            if value is not None:
                self.usage[name] = value

    def _delta(self, index: int, delta: Any) -> None:
        block = self.blocks.setdefault(index, {"type": "text", "text": [], "json": []})
        kind = delta.type
        if kind == "text_delta":
            block["text"].append(delta.text)
        elif kind == "thinking_delta":
            block["text"].append(delta.thinking)
        elif kind == "input_json_delta":
            block["json"].append(delta.partial_json)

    def complete(self) -> None:
        invocation = self.invocation
        invocation.set_response(model=self.model,
                                finish_reasons=[self.stop_reason] if self.stop_reason else None,
                                response_id=self.message_id)
        if self.usage:
            record_usage(invocation, self.usage)
        if self.call.capture:
            blocks = []
            for index in sorted(self.blocks):
                block = self.blocks[index]
                text = "".join(block["text"])
                if block["type"] == "tool_use":
                    blocks.append({"type": "tool_use", "id": block["id"], "name": block["name"],
                                   "input": "".join(block["json"])})
                elif block["type"] == "thinking":
                    blocks.append({"type": "thinking", "thinking": text})
                else:
                    blocks.append({"type": block["type"], "text": text})
            content.record(invocation, self.call.runtime, sc.GEN_AI_OUTPUT_MESSAGES,
                           content.anthropic_output(blocks, self.stop_reason))


def _stream_types() -> tuple[type, type]:
    from anthropic import AsyncStream as SDKAsyncStream
    from anthropic import Stream as SDKStream

    return SDKStream, SDKAsyncStream


_MESSAGES = Kind(sc.OP_CHAT, "anthropic", _request, _response, _MessageStream)


def _stream_helper(is_async: bool) -> Callable[[Settings], Wrapper]:
    """``messages.stream()``: the request is made when its manager is entered.

    The manager keeps the request as a private callable (sync) or coroutine (async); we
    substitute one that opens the invocation when the request is really sent and returns our
    wrapper of the raw stream, which the SDK's ``MessageStream`` then reads.
    """

    def factory(settings: Settings) -> Wrapper:
        sync_type, async_type = _stream_types()

        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
            manager = wrapped(*args, **kwargs)
            if not settings.enabled():
                return manager
            try:
                _substitute(manager, settings, instance, {**kwargs, "stream": True},
                            is_async, sync_type, async_type)
            except Exception as exc:  # an SDK we do not know: leave the manager untouched
                internal_error(None, "anthropic.stream", exc)
            return manager

        return wrapper

    return factory


def _substitute(manager: Any, settings: Settings, instance: Any, kwargs: dict[str, Any],
                is_async: bool, sync_type: type, async_type: type) -> None:
    attr = next(name for name in vars(manager) if name.endswith("__api_request"))
    request = getattr(manager, attr)

    def traced() -> Any:
        call = open_call(_MESSAGES, settings, instance, kwargs)
        if call is None:
            return request()
        try:
            raw = request()
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(raw, sync_type, SyncStream)

    async def traced_async() -> Any:
        call = open_call(_MESSAGES, settings, instance, kwargs)
        if call is None:
            return await request
        try:
            raw = await request
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(raw, async_type, AsyncStream)

    setattr(manager, attr, traced_async() if is_async else traced)


_METHODS: tuple[Method, ...] = (
    ("anthropic.resources.messages", "Messages.create", wrap(_MESSAGES, False, _stream_types)),
    ("anthropic.resources.messages", "AsyncMessages.create", wrap(_MESSAGES, True, _stream_types)),
    ("anthropic.resources.messages", "Messages.stream", _stream_helper(False)),
    ("anthropic.resources.messages", "AsyncMessages.stream", _stream_helper(True)),
    # client.beta.messages: the same API with beta features (same shapes, Beta* types).
    ("anthropic.resources.beta.messages.messages", "Messages.create",
     wrap(_MESSAGES, False, _stream_types)),
    ("anthropic.resources.beta.messages.messages", "AsyncMessages.create",
     wrap(_MESSAGES, True, _stream_types)),
    ("anthropic.resources.beta.messages.messages", "Messages.stream", _stream_helper(False)),
    ("anthropic.resources.beta.messages.messages", "AsyncMessages.stream",
     _stream_helper(True)),
)


class AnthropicInstrumentor(TableInstrumentor):
    """Instruments the ``anthropic`` client.

    ``instrument(tracer_provider=, meter_provider=, capture_content=)``: all optional; without
    providers each call uses the runtime installed by :func:`otel_llm.configure` (else the
    global providers).
    """

    _instruments = ("anthropic >= 0.40",)
    _methods = _METHODS

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._instruments
