"""Canned OpenAI and Anthropic HTTP answers for the real SDKs over a ``MockTransport``.

openai 3.x and anthropic 2.x send through ``httpx2``, older majors through ``httpx``: the
``MockTransport`` of the module the installed SDK uses (:func:`http_module`) is passed with the
SDK's own ``DefaultHttpxClient`` / ``DefaultAsyncHttpxClient``. The fake server
behaves like the real one where it matters to us: a streamed chat sends its usage-only chunk
only when the request asked for it with ``stream_options.include_usage``.
"""

from __future__ import annotations

import base64
import importlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

API_KEY = "sk-proj-TESTKEY0123456789abcdefghijklmnop"
ANTHROPIC_KEY = "sk-ant-api03-TESTKEY0123456789abcdefghijklmnop"

GPT = "gpt-4o-2024-08-06"
CLAUDE = "claude-haiku-4-5-20251001"
# Chat usage: 1200 prompt tokens of which 1000 cached, 300 completion of which 64 reasoning.
CHAT_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 1000},
              "completion_tokens_details": {"reasoning_tokens": 64}}
# Anthropic usage: input_tokens excludes the 1000 cache reads and 200 cache writes.
CLAUDE_USAGE = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200}
STREAM_TEXT = [f"w{i} " for i in range(20)]


def http_module(sdk: str) -> Any:
    """The HTTP library module the installed ``sdk`` sends through (``httpx2`` or ``httpx``)."""
    base = importlib.import_module(f"{sdk}._base_client")
    return getattr(base, "httpx2", None) or base.httpx


OPENAI_HTTP = http_module("openai")
ANTHROPIC_HTTP = http_module("anthropic")
Handler = Callable[[Any], Any]


def sse(events: list[Any], done: bool = True) -> bytes:
    out = []
    for event in events:
        if isinstance(event, tuple):  # (event name, data)
            out.append(f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n")
        else:
            out.append(f"data: {json.dumps(event)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def stream_response(body: bytes | Iterator[bytes] | Any, http: Any = OPENAI_HTTP) -> Any:
    return http.Response(200, content=body, headers={"content-type": "text/event-stream"})


# --- OpenAI ---------------------------------------------------------------------------------------
def chat_completion(content: str = "Hello!", tool_call: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else content}
    if tool_call:
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": GPT,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool_call else "stop"}],
            "usage": CHAT_USAGE}


def chat_chunks(include_usage: bool, tool_call: bool = False) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": GPT}
    usage = {"usage": None} if include_usage else {}
    chunks = [{**base, **usage, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                  "content": ""}}]}]
    if tool_call:
        chunks += [{**base, **usage, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": part}}]}}]}
                   for part in ('{"city"', ': "Paris"}')]
    else:
        chunks += [{**base, **usage, "choices": [{"index": 0, "delta": {"content": text}}]}
                   for text in STREAM_TEXT]
    chunks.append({**base, **usage, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_call else "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": CHAT_USAGE})
    return chunks


def completion(stream_usage: bool | None = None) -> Any:
    base = {"id": "cmpl-1", "object": "text_completion", "created": 1,
            "model": "gpt-3.5-turbo-instruct"}
    if stream_usage is None:
        return {**base, "choices": [{"index": 0, "text": "Hello!", "finish_reason": "stop",
                                     "logprobs": None}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}
    chunks: list[Any] = [{**base, "choices": [{"index": 0, "text": t, "finish_reason": None,
                                              "logprobs": None}]} for t in ("Hel", "lo!")]
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    if stream_usage:
        chunks.append({**base, "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 5,
                                 "total_tokens": 17}})
    return chunks


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    vector = [0.1, 0.2, 0.3, 0.4]
    encoded: Any = vector
    if body.get("encoding_format") == "base64":
        encoded = base64.b64encode(struct.pack("<4f", *vector)).decode()
    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": encoded}],
            "usage": {"prompt_tokens": 8, "total_tokens": 8}}


RESPONSES_USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1000},
                   "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 64},
                   "total_tokens": 1500}


def response_object(status: str = "completed") -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": GPT,
            "status": status, "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                                          "status": "completed", "content": [
                                              {"type": "output_text", "text": "Hello!",
                                               "annotations": []}]}],
            "usage": RESPONSES_USAGE, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "error": None, "incomplete_details": None}


def response_events() -> list[Any]:
    created = {**response_object("in_progress"), "output": [], "usage": None}
    item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress",
            "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    text = "".join(STREAM_TEXT)
    events: list[Any] = [
        {"type": "response.created", "response": created},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
    ]
    events += [{"type": "response.output_text.delta", **where, "delta": t, "logprobs": []}
               for t in STREAM_TEXT]
    final = {**response_object(), "output": [{**item, "status": "completed", "content": [
        {**part, "text": text}]}]}
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        {"type": "response.completed", "response": final},
    ]
    return [(e["type"], {**e, "sequence_number": i}) for i, e in enumerate(events)]


@dataclass
class OpenAIServer:
    """A fake OpenAI API: answers by path, records each request's JSON body and headers."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    override: Handler | None = None

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.override is not None:
            return self.override(request)
        path = request.url.path
        stream = body.get("stream") is True
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        tool = bool(body.get("tools"))
        if path.endswith("/chat/completions"):
            if stream:
                return stream_response(sse(chat_chunks(usage, tool)))
            return OPENAI_HTTP.Response(200, json=chat_completion(tool_call=tool))
        if path.endswith("/completions"):
            if stream:
                return stream_response(sse(completion(stream_usage=usage)))
            return OPENAI_HTTP.Response(200, json=completion())
        if path.endswith("/embeddings"):
            return OPENAI_HTTP.Response(200, json=embeddings(body))
        if path.endswith("/responses"):
            if stream:
                return stream_response(sse(response_events(), done=False))
            return OPENAI_HTTP.Response(200, json=response_object())
        return OPENAI_HTTP.Response(404, json={"error": {"message": "no such path"}})


def openai_client(handler: Handler, *,
                  base_url: str | None = None, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=max_retries,
                         http_client=openai.DefaultHttpxClient(
                             transport=OPENAI_HTTP.MockTransport(handler)))


def async_openai_client(handler: Handler, *,
                        max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=API_KEY, max_retries=max_retries,
                              http_client=openai.DefaultAsyncHttpxClient(
                                  transport=OPENAI_HTTP.MockTransport(handler)))


# --- Anthropic ------------------------------------------------------------------------------------
def claude_message() -> dict[str, Any]:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": CLAUDE,
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": CLAUDE_USAGE}


def claude_events() -> list[Any]:
    start = {**claude_message(), "content": [], "stop_reason": None,
             "usage": {**CLAUDE_USAGE, "output_tokens": 1}}
    events: list[Any] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": text}})
               for text in STREAM_TEXT]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 50}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


@dataclass
class AnthropicServer:
    requests: list[dict[str, Any]] = field(default_factory=list)
    override: Handler | None = None

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        if self.override is not None:
            return self.override(request)
        if body.get("stream") is True:
            return stream_response(sse(claude_events(), done=False), ANTHROPIC_HTTP)
        return ANTHROPIC_HTTP.Response(200, json=claude_message())


def anthropic_client(handler: Handler,
                     **options: Any) -> anthropic.Anthropic:
    options.setdefault("open_telemetry", False)
    return anthropic.Anthropic(api_key=ANTHROPIC_KEY, max_retries=0,
                               http_client=anthropic.DefaultHttpxClient(
                                   transport=ANTHROPIC_HTTP.MockTransport(handler)), **options)


def async_anthropic_client(handler: Handler,
                           **options: Any) -> anthropic.AsyncAnthropic:
    options.setdefault("open_telemetry", False)
    return anthropic.AsyncAnthropic(api_key=ANTHROPIC_KEY, max_retries=0,
                                    http_client=anthropic.DefaultAsyncHttpxClient(
                                        transport=ANTHROPIC_HTTP.MockTransport(handler)), **options)


# --- the "no span left open" check -----------------------------------------------------
class OpenSpans(SpanProcessor):
    """Remembers spans started and not yet ended: a test ends with none open."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.get_span_context().span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is not None:
            self.open.pop(ctx.span_id, None)
