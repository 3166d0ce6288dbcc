"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs`` on a FastAPI app.

The routes live on an :class:`fastapi.APIRouter` (:func:`otlp_router`) so the same app, on the
same port, also serves ``/metrics``, the REST API and the dashboard; :class:`HttpServer` runs
any ASGI app under uvicorn on a background thread.

Per request: bearer token (401), ``Content-Type`` ``application/x-protobuf`` or
``application/json`` (else 415), body size before and after gzip/deflate decompression (413),
decoding (400), then the pipeline: accepted (200, same content type as the request, with
``partial_success`` when spans were rejected), queue full (503 + ``Retry-After``). Error bodies
are a ``google.rpc.Status`` in the request's encoding, as the OTLP specification asks.
CPU-bound work runs on a worker thread so the event loop keeps serving other routes.
"""

from __future__ import annotations

import hmac
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.to_thread
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]

from otel_llm.gateway.codec import decode_json, decode_protobuf, decompress
from otel_llm.gateway.component import (
    SIGNALS,
    InvalidRequest,
    PermanentError,
    RetryableError,
    Signal,
    host_port,
)
from otel_llm.gateway.exporter import HTTP_PATHS
from otel_llm.gateway.intake import Intake

__all__ = ("otlp_router", "bearer_check", "HttpServer", "PROTOBUF", "JSON")

logger = logging.getLogger("otel_llm.gateway")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_TRANSPORT = "http"
_GRPC_CODE = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


def bearer_check(token: str | None) -> Callable[[Request], bool]:
    """A predicate: does the request carry ``Authorization: Bearer <token>``? (always, if None)

    Shared with other routes on the same app (the API) so one token guards them all.
    """
    if token is None:
        return lambda _request: True
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(given, expected)

    return check


def otlp_router(
    intake: Intake,
    *,
    max_request_bytes: int,
    token: str | None = None,
    max_inflight: int = 16,
    workers: int = 2,
) -> APIRouter:
    """The OTLP/HTTP routes over ``intake``, ready for ``app.include_router``.

    At most ``max_inflight`` export requests are read and processed at once (all signals
    together); more are answered 503 + Retry-After before their body is read, which bounds the
    memory bodies in flight may take to ``max_inflight x max_request_bytes``. Decoding and
    enrichment run on at most ``workers`` threads: the work is CPU-bound under one GIL.
    """
    router = APIRouter()
    authorized = bearer_check(token)
    inflight = _Inflight(max_inflight, workers)
    for signal in SIGNALS:
        router.add_api_route(
            HTTP_PATHS[signal],
            _endpoint(signal, intake, max_request_bytes, authorized, inflight),
            methods=["POST"],
            name=f"otlp_{signal}",
            summary=f"OTLP/HTTP export of {signal} (protobuf or JSON)",
            response_class=Response,
        )
    return router


class _Inflight:
    """A count of requests being handled. Only touched on the event loop: no lock needed."""

    def __init__(self, limit: int, workers: int) -> None:
        self.limit = limit
        self.count = 0
        self.workers = workers
        self._threads: anyio.CapacityLimiter | None = None

    @property
    def threads(self) -> anyio.CapacityLimiter:
        # Created on first use: a limiter belongs to the event loop that serves the app.
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.workers)
        return self._threads


def _endpoint(
    signal: Signal,
    intake: Intake,
    limit: int,
    authorized: Callable[[Request], bool],
    inflight: _Inflight,
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def export(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reply_type = JSON if content_type == JSON else PROTOBUF
        try:
            if not authorized(request):
                intake.refused("unauthenticated", _TRANSPORT)
                return _error(
                    401,
                    "missing or invalid bearer token",
                    reply_type,
                    {"WWW-Authenticate": "Bearer"},
                )
            if content_type not in (PROTOBUF, JSON):
                raise InvalidRequest(
                    f"unsupported Content-Type {content_type or '(none)'!r}: "
                    f"use {PROTOBUF} or {JSON}",
                    reason="unsupported_media_type",
                    http_status=415,
                )
            if inflight.count >= inflight.limit:
                raise RetryableError(
                    f"{inflight.count} export requests in progress: retry later",
                    reason="too_many_requests",
                    retry_after_s=1.0,
                )
            inflight.count += 1
            try:
                body = await _read_body(request, limit)
                encoding = request.headers.get("content-encoding")
                reply = await anyio.to_thread.run_sync(
                    _process,
                    signal,
                    intake,
                    body,
                    encoding,
                    content_type,
                    limit,
                    limiter=inflight.threads,
                )
            finally:
                inflight.count -= 1
        except InvalidRequest as exc:
            intake.refused(exc.reason, _TRANSPORT)
            return _error(exc.http_status, str(exc), reply_type)
        except RetryableError as exc:
            intake.refused(exc.reason, _TRANSPORT)
            delay = exc.retry_after_s if exc.retry_after_s is not None else 1.0
            return _error(503, str(exc), reply_type, {"Retry-After": str(max(1, math.ceil(delay)))})
        except PermanentError as exc:
            intake.refused(exc.reason, _TRANSPORT)
            return _error(400, str(exc), reply_type)
        except Exception as exc:  # a bug of ours: answer 500, keep serving
            intake.refused("internal_error", _TRANSPORT)
            logger.warning(
                "otel-llm serve: internal error on HTTP %s export", signal, exc_info=True
            )
            return _error(500, f"internal error: {type(exc).__name__}", reply_type)
        return Response(_encode(reply, reply_type), media_type=reply_type)

    return export


def _process(
    signal: Signal, intake: Intake, body: bytes, encoding: str | None, content_type: str, limit: int
) -> Message:
    data = decompress(body, encoding, limit)
    if content_type == JSON:
        return intake.accept(signal, decode_json(signal, data), None, _TRANSPORT)
    return intake.accept(signal, decode_protobuf(signal, data), data, _TRANSPORT)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop reading as soon as the limit is passed
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"body of {size} bytes exceeds the limit of {limit} bytes",
        reason="too_large",
        http_status=413,
    )


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def _error(
    status: int, message: str, content_type: str, headers: dict[str, str] | None = None
) -> Response:
    body = status_pb2.Status(code=_GRPC_CODE.get(status, code_pb2.UNKNOWN), message=message)
    return Response(
        _encode(body, content_type), status_code=status, media_type=content_type, headers=headers
    )


class HttpServer:
    """Component: serves an ASGI app with uvicorn on a background thread.

    The socket is bound in :meth:`start` (so port 0 resolves at once to :attr:`port`); uvicorn
    installs no signal handlers off the main thread, leaving SIGTERM to the service.
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 4318,
        tls: tuple[str, str] | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._tls = tls  # (certificate path, key path)
        self._start_timeout_s = start_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.port: int | None = None

    @property
    def address(self) -> str:
        return host_port(self._host, self.port if self.port is not None else self._requested_port)

    def start(self) -> None:
        if self._server is not None or self._stopped:
            return
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it small responses wait ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(1024)
        except OSError as exc:
            sock.close()
            raise OSError(
                f"cannot listen for OTLP/HTTP on {self.address}: {exc.strerror}"
            ) from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,  # leave the process's logging alone
            log_level="warning",  # uvicorn's start/stop chatter is not ours to print
            access_log=False,
            lifespan="on",  # routes mounted by others may rely on startup/shutdown events
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="otel-llm-http", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not server.started:  # bounded: uvicorn flips `started` once it is listening
            if not thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                raise OSError(f"the OTLP/HTTP server on {self.address} did not start")
            time.sleep(0.01)

    def shutdown(self, grace_s: float = 5.0) -> None:
        self._stopped = True
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(grace_s + 1.0)
