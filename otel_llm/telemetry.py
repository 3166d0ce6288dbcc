"""``configure()``: providers, exporters, the processor and the hooks' runtime in one call."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import TracerProvider

from otel_llm import _runtime, config
from otel_llm.accounting import Accountant
from otel_llm.core.pricing import PriceTable
from otel_llm.feedback import FeedbackRecorder, RetrievalIndex, install_recorder
from otel_llm.processor import LLMSpanProcessor

if TYPE_CHECKING:
    from otel_llm.alerts import AlertService

logger = logging.getLogger("otel_llm")


class Telemetry:
    """What :func:`configure` set up. ``shutdown()`` is idempotent and safe from any thread."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        runtime: _runtime.Runtime,
        owned: Sequence[Any],
        instrumentors: Sequence[Any] = (),
        prometheus_server: Any = None,
        alerts: AlertService | None = None,
        log_handler: logging.Handler | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.runtime = runtime
        self.accountant: Accountant = runtime.accountant
        self.instrumentors = list(instrumentors)
        self._owned = list(owned)
        self._prometheus_server = prometheus_server
        self._log_handler = log_handler
        self.alerts = alerts
        """In-process alerting: ``alerts.active()``, ``alerts.history()``."""
        self._lock = threading.Lock()
        self._shut = False

    @property
    def prometheus_port(self) -> int | None:
        """The port serving ``/metrics`` in-process, when ``prometheus_port`` was given."""
        server = self._prometheus_server
        return int(server.server_port) if server is not None else None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = True
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                ok = bool(flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        for instrumentor in self.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception as exc:  # keep shutting the rest down
                logger.warning("otel-llm: could not uninstrument %r: %r", instrumentor, exc)
        if self.alerts is not None:
            self.alerts.shutdown()
        if self._log_handler is not None:  # before its provider shuts down
            logging.getLogger().removeHandler(self._log_handler)
        self.force_flush()
        for component in self._owned:
            component.shutdown()
        if self._prometheus_server is not None:
            self._prometheus_server.shutdown()
            self._prometheus_server.server_close()
        if _runtime._current is self.runtime:
            _runtime.install(None)
            install_recorder(None)


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    instrument: bool | Sequence[str] = True,
    capture_content: bool | None = None,
    prices: str | os.PathLike[str] | PriceTable | None = None,
    rules: Any = None,
    notifiers: Any = None,
    prometheus_port: int | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Telemetry:
    """Set up tracing, metrics, cost and error accounting for this process.

    Each argument falls back to its ``OTEL_*`` / ``OTEL_LLM_*`` environment variable, then to a
    default (DESIGN.md §8). Without an endpoint nothing is exported, but metrics and hooks work.
    Global providers are installed unless providers are passed; with a passed
    ``tracer_provider``, ``LLMSpanProcessor(BatchSpanProcessor(exporter))`` is added to it when
    an endpoint is known. Invalid settings raise ``ValueError`` here, not later.
    """
    name = config.first(service_name, config.env(config.ENV_SERVICE_NAME)) or "unknown_service"
    base = config.first(endpoint, config.env(config.ENV_ENDPOINT))
    proto = config.resolve_protocol(
        protocol, (config.env(config.ENV_TRACES_ENDPOINT) if endpoint is None else None) or base
    )

    def signal_url(env_name: str, path: str) -> str | None:
        # A signal's own env URL applies only when no endpoint= was passed; else the base + path.
        url = config.env(env_name) if endpoint is None else None
        if url is None and base is not None:
            url = config.signal_endpoint(base, proto, path)
        return url

    traces_url = signal_url(config.ENV_TRACES_ENDPOINT, "/v1/traces")
    metrics_url = signal_url(config.ENV_METRICS_ENDPOINT, "/v1/metrics")
    # Logs are opt-in (OTEL_LOGS_EXPORTER=otlp): a library should not capture an app's logs
    # unasked.
    logs_url = None
    if (config.env(config.ENV_LOGS_EXPORTER) or "").lower() == "otlp":
        logs_url = signal_url(config.ENV_LOGS_ENDPOINT, "/v1/logs")
    # OTEL_{TRACES,METRICS}_EXPORTER=none switches one signal's OTLP export off, as in the SDK.
    if config.exporter_off(config.ENV_TRACES_EXPORTER):
        traces_url = None
    if config.exporter_off(config.ENV_METRICS_EXPORTER):
        metrics_url = None
    port = config.resolve_port(
        prometheus_port if prometheus_port is not None else config.env(config.ENV_PROMETHEUS_PORT),
        "prometheus_port",
    )
    if port is not None and meter_provider is not None:
        # An SDK MeterProvider's readers are fixed when it is built: ours cannot join yours.
        if prometheus_port is not None:
            raise ValueError(
                "prometheus_port needs the MeterProvider configure() builds; with your own "
                "meter_provider, give it an opentelemetry.exporter.prometheus."
                "PrometheusMetricReader and serve /metrics yourself"
            )
        logger.warning(
            "otel-llm: %s is ignored: configure() was given a meter_provider, whose readers "
            "are its own", config.ENV_PROMETHEUS_PORT,
        )
        port = None
    table = _price_table(prices)
    # Imported here: alerting pulls in httpx, which `import otel_llm` alone should not pay for.
    from otel_llm import alerts

    alerting = alerts.resolve(rules, notifiers)  # a bad rules file raises here, not later

    resource = Resource.create({SERVICE_NAME: name})
    owned: list[Any] = []
    prometheus_server = None

    if meter_provider is None:
        readers: list[MetricReader] = []
        if metrics_url is not None:
            readers.append(PeriodicExportingMetricReader(_exporter("metrics", proto, metrics_url)))
        if port is not None:
            reader, prometheus_server = _prometheus(port)
            readers.append(reader)
        sdk_meter_provider = SDKMeterProvider(resource=resource, metric_readers=readers)
        owned.append(sdk_meter_provider)
        meter_provider = sdk_meter_provider
        _set_global_meter_provider(sdk_meter_provider)

    accountant = Accountant(meter_provider=meter_provider, prices=table)
    alert_service = alerts.AlertService.from_config(
        alerting, meter_provider=meter_provider, service_name=name,
        on_error=accountant.internal_error,
    )
    accountant.add_observer(alert_service)
    downstream: list[SpanProcessor] = []
    if traces_url is not None:
        downstream.append(BatchSpanProcessor(_exporter("traces", proto, traces_url)))
    processor = LLMSpanProcessor(*downstream, accountant=accountant)
    if tracer_provider is None:
        sdk_tracer_provider = SDKTracerProvider(resource=resource)
        sdk_tracer_provider.add_span_processor(processor)
        owned.insert(0, sdk_tracer_provider)
        tracer_provider = sdk_tracer_provider
        _set_global_tracer_provider(sdk_tracer_provider)
    elif downstream:
        add = getattr(tracer_provider, "add_span_processor", None)
        if add is None:
            raise ValueError("tracer_provider must be an SDK TracerProvider to add an exporter")
        add(processor)

    log_handler = None
    if logs_url is not None:
        logger_provider, log_handler = _otlp_logs(proto, logs_url, resource)
        owned.append(logger_provider)

    runtime = _runtime.Runtime.create(
        tracer_provider=tracer_provider, accountant=accountant, capture_content=capture_content
    )
    _runtime.install(runtime)
    # record_feedback() scores a trace against what its retrieval returned: remember recent
    # retrievals (bounded) from the accounting path.
    retrievals = RetrievalIndex()
    accountant.add_observer(retrievals)
    install_recorder(FeedbackRecorder([retrievals], tracer_provider=tracer_provider,
                                      meter_provider=meter_provider))
    instrumentors = _instrument(instrument, runtime)
    alert_service.start()
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        runtime=runtime,
        owned=owned,
        instrumentors=instrumentors,
        prometheus_server=prometheus_server,
        alerts=alert_service,
        log_handler=log_handler,
    )


def _price_table(prices: str | os.PathLike[str] | PriceTable | None) -> PriceTable:
    if isinstance(prices, PriceTable):
        return prices
    path = prices if prices is not None else config.env(config.ENV_PRICES)
    return PriceTable.from_file(path) if path is not None else PriceTable()


# The SDK's OTLP exporter class per (signal, protocol): module and class name.
_EXPORTERS: dict[tuple[str, str], tuple[str, str]] = {
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
                         "OTLPSpanExporter"),
    ("traces", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                                  "OTLPSpanExporter"),
    ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
                          "OTLPMetricExporter"),
    ("metrics", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                                   "OTLPMetricExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http._log_exporter",
                                "OTLPLogExporter"),
}


def _exporter(signal: str, protocol: str, url: str) -> Any:
    """The SDK's OTLP exporter for ``signal``, imported only when used."""
    module, name = _EXPORTERS[(signal, protocol)]
    cls = getattr(importlib.import_module(module), name)
    if protocol == "grpc":
        return cls(endpoint=url, insecure=url.startswith("http://"))
    return cls(endpoint=url)


def _otlp_logs(protocol: str, url: str, resource: Resource) -> tuple[Any, logging.Handler]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from otel_llm.logging import add_otlp_handler

    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(_exporter("logs", protocol, url)))
    return provider, add_otlp_handler(provider)


def _prometheus(port: int) -> tuple[MetricReader, Any]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    # Loopback unless told otherwise (e.g. OTEL_LLM_PROMETHEUS_HOST=0.0.0.0 in a container).
    host = config.env(config.ENV_PROMETHEUS_HOST) or "127.0.0.1"
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return reader, server


def _set_global_tracer_provider(provider: SDKTracerProvider) -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    else:
        logger.warning(
            "otel-llm: a global TracerProvider is already set; otel-llm's hooks use their own. "
            "Pass tracer_provider= to configure() to share one."
        )


def _set_global_meter_provider(provider: SDKMeterProvider) -> None:
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        metrics.set_meter_provider(provider)
    else:
        logger.warning(
            "otel-llm: a global MeterProvider is already set; otel-llm records to its own. "
            "Pass meter_provider= to configure() to share one."
        )


def _instrument(instrument: bool | Sequence[str], runtime: _runtime.Runtime) -> list[Any]:
    if instrument is False:
        return []
    from otel_llm import instrumentation

    names = None if instrument is True else list(instrument)
    # The instrumentors write through this configure()'s runtime: same tracer, same accountant
    # (prices, observers, and the processor's record of which spans were already accounted).
    return instrumentation.instrument_all(names, runtime=runtime)
