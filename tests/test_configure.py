from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm import _runtime
from otel_llm import semconv as sc
from tests.otlp_sink import GrpcSink, HttpSink, attributes
from tests.pricing_oracle import genai_prices_cost


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
                 "OTEL_LLM_PROMETHEUS_PORT", "OTEL_LLM_PRICES", "OTEL_TRACES_EXPORTER",
                 "OTEL_METRICS_EXPORTER", "OTEL_LLM_PROMETHEUS_HOST", "OTEL_LOGS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    yield
    _runtime.install(None)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_span_exported_over_real_otlp_carries_cost(protocol: str) -> None:
    sink = GrpcSink() if protocol == "grpc" else HttpSink()
    tracer_provider = TracerProvider()
    meter_provider = MeterProvider()
    tel = otel_llm.configure(
        service_name="rag-api", endpoint=sink.endpoint, protocol=protocol, instrument=False,
        tracer_provider=tracer_provider, meter_provider=meter_provider,
    )
    try:
        with otel_llm.llm_call("anthropic", "claude-sonnet-4-5") as call:
            call.record_usage(input_tokens=5000, output_tokens=400, cached_input_tokens=4000,
                              cache_creation_input_tokens=500)
            call.set_response(model="claude-sonnet-4-5-20250929", finish_reasons=["end_turn"])
        assert tel.force_flush()
        (span,) = sink.wait_for(1)
        attrs = attributes(span)
        assert span.name == "chat claude-sonnet-4-5"
        assert attrs["gen_ai.usage.input_tokens"] == 5000
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4000
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 500
        expected = genai_prices_cost(
            "claude-sonnet-4-5-20250929", "anthropic", input_tokens=5000, output_tokens=400,
            cache_read_tokens=4000, cache_write_tokens=500,
        )
        assert attrs[sc.OTEL_LLM_COST_USD] == pytest.approx(expected, rel=1e-9)
        assert attrs[sc.GEN_AI_USAGE_COST] == pytest.approx(expected, rel=1e-9)
        assert attrs[sc.OTEL_LLM_COST_SOURCE] == "price_table"
    finally:
        tel.shutdown()
        tracer_provider.shutdown()
        sink.close()


def test_env_endpoint_is_a_base_url_for_http(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = HttpSink()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    tracer_provider = TracerProvider()
    tel = otel_llm.configure(instrument=False, tracer_provider=tracer_provider,
                             meter_provider=MeterProvider())
    try:
        with otel_llm.llm_call("openai", "gpt-4o") as call:
            call.record_usage(input_tokens=1, output_tokens=1)
        tel.force_flush()
        assert len(sink.wait_for(1)) == 1  # arrived at /v1/traces
    finally:
        tel.shutdown()
        tracer_provider.shutdown()
        sink.close()


def test_invalid_settings_fail_early() -> None:
    with pytest.raises(ValueError, match="protocol"):
        otel_llm.configure(endpoint="http://127.0.0.1:4317", protocol="carrier-pigeon",
                           tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    with pytest.raises(ValueError, match="endpoint"):
        otel_llm.configure(endpoint="127.0.0.1:4317", protocol="http/protobuf",
                           tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    with pytest.raises(ValueError, match="prometheus_port"):
        otel_llm.configure(prometheus_port=70000, tracer_provider=TracerProvider(),
                           meter_provider=MeterProvider())


def test_shutdown_is_idempotent_and_restores_runtime() -> None:
    tel = otel_llm.configure(instrument=False, tracer_provider=TracerProvider(),
                             meter_provider=MeterProvider())
    assert _runtime.current() is tel.runtime
    tel.shutdown()
    tel.shutdown()
    assert _runtime.current() is not tel.runtime


def test_in_process_prometheus_endpoint_uses_contract_names() -> None:
    tel = otel_llm.configure(instrument=False, prometheus_port=0,
                             tracer_provider=TracerProvider())
    try:
        with otel_llm.llm_call("openai", "gpt-4o") as call:
            call.record_usage(input_tokens=100, output_tokens=10)
        with pytest.raises(TimeoutError), otel_llm.llm_call("openai", "gpt-4o"):
            raise TimeoutError
        assert tel.prometheus_port
        url = f"http://127.0.0.1:{tel.prometheus_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        assert "otel_llm_cost_usd_total{" in text
        assert "otel_llm_errors_total{" in text
        assert "gen_ai_client_token_usage_bucket{" in text
        assert "gen_ai_client_operation_duration_seconds_bucket{" in text
    finally:
        tel.shutdown()


def test_prometheus_port_with_a_meter_provider_of_the_users(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Its readers are fixed when it is built: an explicit port cannot be honoured, so it fails
    # early; the same port from the environment is ignored with a warning.
    with pytest.raises(ValueError, match="prometheus_port"):
        otel_llm.configure(instrument=False, prometheus_port=0, meter_provider=MeterProvider(),
                           tracer_provider=TracerProvider())
    monkeypatch.setenv("OTEL_LLM_PROMETHEUS_PORT", "0")
    tel = otel_llm.configure(instrument=False, meter_provider=MeterProvider(),
                             tracer_provider=TracerProvider())
    try:
        assert tel.prometheus_port is None
        assert "OTEL_LLM_PROMETHEUS_PORT is ignored" in caplog.text
    finally:
        tel.shutdown()


def test_public_api_is_curated() -> None:
    assert set(otel_llm.__all__) == {
        "__version__", "configure", "Telemetry", "LLMSpanProcessor", "llm_call", "embedding",
        "retrieval", "rerank", "rag_pipeline", "trace_llm", "Invocation", "LLMCall", "Cost",
        "ErrorInfo", "CallRecord", "CategorizedError", "ValidationError", "AuthenticationError",
        "AuthorizationError", "NotFoundError", "BusinessLogicError", "ExternalServiceError",
        "EmbeddingServiceError", "VectorDatabaseError", "LLMServiceError", "RateLimitError",
        "ResourceExhaustedError", "InternalError", "record_feedback", "FeedbackResult",
    }
    for name in otel_llm.__all__:
        assert getattr(otel_llm, name) is not None


def test_exporter_none_switches_one_signal_off(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = HttpSink()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    tracer_provider = TracerProvider()
    tel = otel_llm.configure(endpoint=sink.endpoint, protocol="http/protobuf", instrument=False,
                             tracer_provider=tracer_provider, meter_provider=MeterProvider())
    try:
        with otel_llm.llm_call("openai", "gpt-4o") as call:
            call.record_usage(input_tokens=1, output_tokens=1)
        tel.force_flush()
        assert sink.wait_for(1, timeout=0.5) == []
    finally:
        tel.shutdown()
        tracer_provider.shutdown()
        sink.close()


def test_logs_export_is_opt_in_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import time

    sink = HttpSink()
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    handlers_before = list(logging.getLogger().handlers)
    tracer_provider = TracerProvider()
    tel = otel_llm.configure(endpoint=sink.endpoint, protocol="http/protobuf", instrument=False,
                             tracer_provider=tracer_provider, meter_provider=MeterProvider())
    try:
        logging.getLogger("rag-api").warning("login failed password=hunter2 for bob@example.com")
        tel.force_flush()
        for provider in tel._owned:  # the LoggerProvider configure() created
            provider.force_flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(p == "/v1/logs" for p, _ in sink.bodies):
            time.sleep(0.05)
        logs = b"".join(body for path, body in sink.bodies if path == "/v1/logs")
        assert b"login failed" in logs
        assert b"hunter2" not in logs and b"bob@example.com" not in logs
    finally:
        tel.shutdown()
        tracer_provider.shutdown()
        sink.close()
    assert logging.getLogger().handlers == handlers_before  # shutdown removed our handler
