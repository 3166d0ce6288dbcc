"""OTLP/gRPC receiver: TraceService, MetricsService and LogsService ``Export``.

Handlers take the raw request bytes (no deserializer registered), so the gateway parses each
request once and can forward it unchanged when nothing was added. grpc-core decompresses gzip
and enforces a hard size ceiling (twice ``max_request_bytes``, applied after decompression, so a
gzip bomb is never inflated past it); the handler then applies the configured limit itself so
that it can count the refusal and answer INVALID_ARGUMENT like any other bad input.

Statuses: INVALID_ARGUMENT (bad or too large), UNAUTHENTICATED (token), RESOURCE_EXHAUSTED +
RetryInfo (queue full; the OpenTelemetry SDK exporters back off for the advised delay),
UNAVAILABLE (shutting down), INTERNAL (a bug of ours, logged and counted).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]

from otel_llm.gateway.codec import decode_protobuf
from otel_llm.gateway.component import (
    SIGNALS,
    InvalidRequest,
    PermanentError,
    RetryableError,
    Signal,
    host_port,
)
from otel_llm.gateway.exporter import GRPC_METHODS
from otel_llm.gateway.intake import Intake

__all__ = ("GrpcReceiver",)

logger = logging.getLogger("otel_llm.gateway")
_TRANSPORT = "grpc"

if TYPE_CHECKING:  # generic in grpc-stubs only
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor


class GrpcReceiver:
    """Component: a grpcio server on ``host:port`` (0 = any free port; see :attr:`port`)."""

    def __init__(
        self,
        intake: Intake,
        *,
        host: str = "127.0.0.1",
        port: int = 4317,
        max_request_bytes: int = 8 * 1024 * 1024,
        token: str | None = None,
        tls: tuple[bytes, bytes] | None = None,
        workers: int = 2,
        max_inflight: int = 16,
    ) -> None:
        self._intake = intake
        self._host = host
        self._requested_port = port
        self._limit = max_request_bytes
        self._token = token
        self._tls = tls  # (private key PEM, certificate PEM)
        self._workers = workers
        self._max_inflight = max_inflight
        self._server: grpc.Server | None = None
        self._stopped = False
        self.port: int | None = None

    @property
    def address(self) -> str:
        return host_port(self._host, self.port if self.port is not None else self._requested_port)

    def start(self) -> None:
        if self._server is not None or self._stopped:
            return
        interceptors: list[grpc.ServerInterceptor[Any, Any]] = (
            [_BearerAuth(self._token, self._intake)] if self._token else []
        )
        server = grpc.server(
            futures.ThreadPoolExecutor(self._workers, thread_name_prefix="otel-llm-grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", 2 * self._limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                # A second gateway on the same port must fail to start, not share the traffic.
                ("grpc.so_reuseport", 0),
            ],
            # Requests beyond this wait nowhere: grpc answers RESOURCE_EXHAUSTED at once, so
            # memory held by bodies in flight stays within max_inflight x max_request_bytes.
            maximum_concurrent_rpcs=self._max_inflight,
        )
        handlers = {
            signal: grpc.unary_unary_rpc_method_handler(self._handler(signal)) for signal in SIGNALS
        }
        for signal, handler in handlers.items():
            service, method = GRPC_METHODS[signal].strip("/").split("/")
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, {method: handler}),)
            )
        bind = self.address
        try:
            if self._tls is not None:
                credentials = grpc.ssl_server_credentials([self._tls])
                port = server.add_secure_port(bind, credentials)
            else:
                port = server.add_insecure_port(bind)
        except RuntimeError:  # newer grpcio raises on a failed bind, older returns 0
            port = 0
        if not port:
            server.stop(None)
            raise OSError(f"cannot listen for OTLP/gRPC on {bind} (address in use?)")
        server.start()
        self._server = server
        self.port = port

    def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop accepting; let running calls finish for up to ``grace_s`` seconds."""
        self._stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace_s).wait(grace_s + 1.0)

    def _handler(self, signal: Signal) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        intake, limit = self._intake, self._limit

        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                if len(request) > limit:
                    raise InvalidRequest(
                        f"request of {len(request)} bytes exceeds the limit of {limit} bytes",
                        reason="too_large",
                    )
                message = decode_protobuf(signal, request)
                reply = intake.accept(signal, message, request, _TRANSPORT)
                return reply.SerializeToString()
            except InvalidRequest as exc:
                intake.refused(exc.reason, _TRANSPORT)
                code, details = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
            except RetryableError as exc:
                intake.refused(exc.reason, _TRANSPORT)
                if exc.reason == "queue_full":
                    _set_retry_info(context, exc.retry_after_s or 1.0, str(exc))
                    code = grpc.StatusCode.RESOURCE_EXHAUSTED
                else:
                    code = grpc.StatusCode.UNAVAILABLE
                details = str(exc)
            except PermanentError as exc:
                intake.refused(exc.reason, _TRANSPORT)
                code, details = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
            except Exception as exc:  # a bug of ours: answer INTERNAL, keep serving
                intake.refused("internal_error", _TRANSPORT)
                logger.warning(
                    "otel-llm serve: internal error on gRPC %s export", signal, exc_info=True
                )
                code, details = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
            context.abort(code, details)
            raise AssertionError("unreachable: context.abort raises")

        return export


def _set_retry_info(context: grpc.ServicerContext, delay_s: float, message: str) -> None:
    """RetryInfo both where gRPC puts status details and where the Python SDK reads it."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.CopyFrom(_duration(delay_s))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
    status.details.add().Pack(info)
    context.set_trailing_metadata(
        (
            ("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()),
        )
    )


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


class _BearerAuth(_Interceptor):
    """Refuses calls without ``authorization: Bearer <token>`` before their body is read."""

    def __init__(self, token: str, intake: Intake) -> None:
        self._expected = f"Bearer {token}".encode()
        self._intake = intake

        def deny(_request: Any, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
            raise AssertionError("unreachable: context.abort raises")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        given = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                break
        # Constant-time comparison: the token must not leak through response timing.
        if hmac.compare_digest(given, self._expected):
            return continuation(handler_call_details)
        self._intake.refused("unauthenticated", _TRANSPORT)
        return self._deny
