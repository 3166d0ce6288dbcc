"""The gateway service: pipeline, receivers, ``/metrics``, lifecycle and signals in one object.

Embedding (the API issue mounts its routes the same way)::

    gateway = Gateway(GatewaySettings(grpc_port=0, http_port=0, forward="http://127.0.0.1:4317"))
    gateway.app.include_router(api_router)       # before start(): same port as OTLP/HTTP
    gateway.start()                              # binds, starts threads; ports now known
    print(gateway.banner())                      # otel-llm serve: grpc=127.0.0.1:PORT http=...
    ...
    gateway.shutdown()                           # stop receivers, drain the queue, close

Everything is injectable (STYLE.md): the Prometheus registry ``/metrics`` serves, the meter
provider, the price table, the accountant and its call observers (alert evaluator, call store),
and the sender that replaces ``--forward``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Response
from google.protobuf.internal import api_implementation
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from otel_llm.accounting import Accountant, CallObserver
from otel_llm.core.pricing import PriceTable
from otel_llm.gateway.config import GatewaySettings
from otel_llm.gateway.exporter import Sender
from otel_llm.gateway.pipeline import Pipeline, build_pipeline
from otel_llm.gateway.receiver_grpc import GrpcReceiver
from otel_llm.gateway.receiver_http import HttpServer, bearer_check, otlp_router
from otel_llm.prometheus_metrics import PrometheusCallMetrics

__all__ = ("Gateway", "check_protobuf_backend")

logger = logging.getLogger("otel_llm.gateway")


def check_protobuf_backend() -> str:
    """The protobuf backend in use; warns unless it is upb (python is 100-250x slower)."""
    backend = api_implementation.Type()
    if backend != "upb":
        logger.warning(
            "otel-llm serve: protobuf runs on its %r backend, not upb: expect a throughput "
            "100x lower; install protobuf>=4.21 wheels and unset "
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION",
            backend,
        )
    return backend


class Gateway:
    """``otel-llm serve`` as an object: construct, mount routes on :attr:`app`, ``start()``.

    ``shutdown()`` stops the receivers, drains the export queue for up to
    ``settings.shutdown_timeout`` seconds, and closes everything it created; it is idempotent
    and safe before ``start()``. Usable as a context manager.
    """

    def __init__(
        self,
        settings: GatewaySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        meter_provider: MeterProvider | None = None,
        prices: PriceTable | None = None,
        accountant: Accountant | None = None,
        observers: Sequence[CallObserver] = (),
        sender: Sender | None = None,
        app: FastAPI | None = None,
    ) -> None:
        self.settings = settings = settings or GatewaySettings()
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._owned_provider: SDKMeterProvider | None = None
        if meter_provider is None:
            reader = PrometheusMetricReader(registry=self.registry)
            meter_provider = self._owned_provider = SDKMeterProvider(
                metric_readers=[reader], resource=Resource.create({"service.name": "otel-llm"})
            )
        self.meter_provider = meter_provider
        if accountant is None:
            if prices is None:
                prices = PriceTable.from_file(settings.prices) if settings.prices else PriceTable()
            accountant = Accountant(
                meter_provider=meter_provider,
                prices=prices,
                observers=observers,
                # Per-call metrics aggregated at scrape time: the SDK's per-measurement path
                # would cost more than everything else the gateway does for a span.
                recorder=(
                    PrometheusCallMetrics(self.registry)
                    if self._owned_provider is not None else None
                ),
            )
        self.accountant = accountant
        self.pipeline: Pipeline = build_pipeline(
            settings, accountant, meter_provider, sender=sender
        )
        self.alerts: Any = None
        """The alert service, when the CLI's wiring added one (``otel_llm.serve.wire``)."""
        self.authorized = bearer_check(settings.token)
        """``authorized(request) -> bool``: the ``--token`` check, for routes others mount."""
        self.app = app if app is not None else FastAPI(title="otel-llm")
        self.app.include_router(
            otlp_router(
                self.pipeline.intake,
                max_request_bytes=settings.max_request_bytes,
                token=settings.token,
                max_inflight=settings.max_inflight,
                workers=settings.receiver_workers,
            )
        )
        self.app.add_api_route("/metrics", self._metrics, methods=["GET"], include_in_schema=False)
        tls_pem: tuple[bytes, bytes] | None = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
                tls_pem = (key.read(), cert.read())
        self.grpc = GrpcReceiver(
            self.pipeline.intake,
            host=settings.host,
            port=settings.grpc_port,
            max_request_bytes=settings.max_request_bytes,
            token=settings.token,
            tls=tls_pem,
            workers=settings.receiver_workers,
            max_inflight=settings.max_inflight,
        )
        self.http = HttpServer(
            self.app,
            host=settings.host,
            port=settings.http_port,
            tls=(settings.tls_cert, settings.tls_key)
            if settings.tls_cert is not None and settings.tls_key is not None
            else None,
        )
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    @property
    def grpc_address(self) -> str:
        return self.grpc.address

    @property
    def http_address(self) -> str:
        return self.http.address

    def banner(self) -> str:
        """The one start-up line: ``otel-llm serve: grpc=HOST:PORT http=HOST:PORT``."""
        return f"otel-llm serve: grpc={self.grpc_address} http={self.http_address}"

    def start(self) -> None:
        """Start exporting, then receiving. Raises ``OSError`` when a port cannot be bound
        (everything already started is shut down again)."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
        check_protobuf_backend()
        if self.settings.queue_dir and self.pipeline.queue is None:
            logger.warning("otel-llm serve: --queue-dir has no effect without --forward")
        try:
            self.pipeline.start()
            self.grpc.start()
            self.http.start()
        except BaseException:
            self.shutdown()
            raise
        logger.info(
            "otel-llm serve: listening on grpc=%s http=%s, forwarding to %s",
            self.grpc_address,
            self.http_address,
            self.settings.forward or "nowhere (enrich and record only)",
        )

    def shutdown(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.http.shutdown()
        self.grpc.shutdown()
        self.pipeline.shutdown(self.settings.shutdown_timeout)
        if self._owned_provider is not None:
            self._owned_provider.shutdown()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    async def _metrics(self) -> Response:
        # Collection runs the SDK's callbacks under its locks: keep it off the event loop.
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
