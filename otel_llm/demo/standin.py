"""A local stand-in for an OpenAI-compatible API: chat (stream or not) and embeddings.

Answers like the real service closely enough for the real ``openai`` client, with usage
(cached prompt tokens included) and three injectable failures, chosen per request by the
``x-demo-fault`` header: ``rate_limit`` (429 with Retry-After), ``timeout`` (answers after the
client gave up) and ``context_length`` (400 ``context_length_exceeded``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

SLOW_SECONDS = 2.0
"""How long a ``timeout`` fault waits: longer than the demo client's timeout."""


def _tokens(text: str) -> int:
    return max(1, int(len(text.split()) * 1.3))


def _error(status: int, message: str, kind: str, code: str, **headers: str) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(seed: int | None = None, latency: tuple[float, float] = (0.02, 0.12)) -> FastAPI:
    """The stand-in app; ``latency`` is the range of simulated model latency in seconds."""
    rng = random.Random(seed)
    app = FastAPI(title="otel-llm demo stand-in LLM")

    async def fault(request: Request) -> Response | None:
        kind = request.headers.get("x-demo-fault")
        if kind == "rate_limit":
            return _error(429, "Rate limit reached for requests", "requests",
                          "rate_limit_exceeded", **{"retry-after": "1"})
        if kind == "context_length":
            return _error(400, "This model's maximum context length is 128000 tokens. However, "
                          "your messages resulted in 131072 tokens.", "invalid_request_error",
                          "context_length_exceeded")
        if kind == "timeout":
            await asyncio.sleep(SLOW_SECONDS)
        return None

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body: dict[str, Any] = await request.json()  # before a fault: the client may go away
        failed = await fault(request)
        if failed is not None:
            return failed
        model = str(body.get("model", "gpt-4o-mini"))
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = _tokens(prompt) + 400  # a system prompt and retrieved context
        cached = rng.choice((0, 0, 256, 384))
        completion_tokens = rng.randint(40, 260)
        answer = " ".join(["Based on the documents,"] + ["token"] * (completion_tokens - 4))
        await asyncio.sleep(rng.uniform(*latency))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": min(cached, prompt_tokens)},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        served = f"{model}-2024-07-18" if model == "gpt-4o-mini" else model
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_stream(ident, served, answer, usage, include),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": ident, "object": "chat.completion", "created": int(time.time()),
            "model": served,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": usage,
        })

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        failed = await fault(request)
        if failed is not None:
            return failed
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        await asyncio.sleep(rng.uniform(latency[0] / 2, latency[1] / 2))
        tokens = sum(_tokens(str(t)) for t in texts)
        return JSONResponse({
            "object": "list", "model": body.get("model", "text-embedding-3-small"),
            "data": [{"object": "embedding", "index": i,
                      "embedding": [rng.uniform(-1, 1) for _ in range(8)]}
                     for i in range(len(texts))],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    return app


async def _stream(ident: str, model: str, answer: str, usage: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": choices, **extra}
        return f"data: {json.dumps(data)}\n\n".encode()

    words = answer.split(" ")
    for i in range(0, len(words), 16):
        yield chunk([{"index": 0, "delta": {"content": " ".join(words[i:i + 16]) + " "},
                      "finish_reason": None}])
        await asyncio.sleep(0.002)
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if include_usage:
        yield chunk([], usage=usage)
    yield b"data: [DONE]\n\n"
