"""The gateway's scrape-time recorder renders exactly what the SDK's Prometheus exporter does."""

from __future__ import annotations

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from otel_llm.core.types import CallRecord, Cost, ErrorInfo, LLMCall
from otel_llm.metrics import Instruments
from otel_llm.prometheus_metrics import PrometheusCallMetrics

RECORDS = [
    CallRecord(LLMCall("chat", "openai", "gpt-4o", "gpt-4o-2024-08-06", 1200, 300,
                       cache_read_tokens=1000, duration_s=0.7, time_to_first_chunk_s=0.2,
                       server_address="api.openai.com", server_port=443, project="support"),
               Cost(0.004, 0.001, 0.003, "price_table"), None, 1.0),
    CallRecord(LLMCall("chat", "openai", "gpt-4o", None, duration_s=0.05, is_error=True,
                       error_type="rate_limit"), None,
               ErrorInfo("resource_error", "high", "rate_limit"), 2.0),
    CallRecord(LLMCall("chat", "acme", "acme-9", "acme-9", 10, 10, duration_s=100.0),
               Cost(None, None, None, "unknown_model"), None, 3.0),
    CallRecord(LLMCall("retrieval", duration_s=0.01, retrieval_documents=4), None, None, 4.0),
]


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items()
                               if not k.startswith("otel_scope") and v != "")
            if s.name.startswith(("gen_ai_", "otel_llm_cost", "otel_llm_errors",
                                  "otel_llm_retrieval")) and not s.name.endswith("_created"):
                out[(s.name, labels)] = s.value
    return out


def test_same_series_and_values_as_the_sdk_exporter() -> None:
    sdk_registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=sdk_registry)])
    instruments = Instruments(provider)
    ours_registry = CollectorRegistry()
    ours = PrometheusCallMetrics(ours_registry)
    for record in RECORDS:
        instruments.record(record)
        ours.record(record)
    expected = samples(sdk_registry)
    got = samples(ours_registry)
    assert expected  # the comparison is not vacuous
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value, key
    provider.shutdown()


def test_server_port_goes_with_the_server_address() -> None:
    # semconv: server.port is conditionally required on the GenAI metrics when server.address is.
    registry = CollectorRegistry()
    PrometheusCallMetrics(registry).record(RECORDS[0])
    ports = {labels for (name, labels) in samples(registry) if name.startswith("gen_ai_")}
    assert ports and all(("server_port", "443") in labels for labels in ports)
