"""The OpenTelemetry Collector configs: no collector runs here (DESIGN.md §9), so they are
checked for what the collector would refuse at start-up and for the topology they promise."""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy_support import (
    COLLECTOR_CONFIGS,
    CONFIG,
    gateway_settings,
    load_yaml,
    services,
)

from otel_llm import semconv as sc


def collector(name: str) -> dict[str, Any]:
    data = load_yaml(CONFIG / name)
    assert isinstance(data, dict), name
    return data


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    result = config["service"]["pipelines"]
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_every_pipeline_component_is_defined_and_every_definition_used(name: str) -> None:
    config = collector(name)
    for kind in ("receivers", "processors", "exporters"):
        defined = set(config.get(kind) or {})
        used = {c for p in pipelines(config).values() for c in p.get(kind, [])}
        assert used <= defined, f"{name}: {kind} used but not defined: {used - defined}"
        assert defined <= used, f"{name}: {kind} defined but unused: {defined - used}"
    assert set(config["service"].get("extensions", [])) == set(config.get("extensions") or {})


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_pipelines_limit_memory_first_and_batch_last(name: str) -> None:
    for signal, pipeline in pipelines(collector(name)).items():
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter", (name, signal)
        assert processors[-1] == "batch", (name, signal)


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_collector_receives_otlp_grpc_and_http_on_the_standard_ports(name: str) -> None:
    config = collector(name)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    for pipeline in pipelines(config).values():
        assert pipeline["receivers"] == ["otlp"]


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_metrics_go_to_the_prometheus_exporter_with_exemplars(name: str) -> None:
    config = collector(name)
    assert pipelines(config)["metrics"]["exporters"] == ["prometheus"]
    prometheus = config["exporters"]["prometheus"]
    assert prometheus["endpoint"] == "0.0.0.0:8889"
    assert prometheus["enable_open_metrics"] is True  # exemplars need OpenMetrics
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert reader["prometheus"] == {"host": "0.0.0.0", "port": 8888}


def test_default_collector_sends_traces_through_the_gateway_to_jaeger() -> None:
    config = collector("otelcol.yaml")
    (exporter,) = pipelines(config)["traces"]["exporters"]
    assert exporter.split("/")[0] == "otlp_grpc"
    settings = gateway_settings()
    assert config["exporters"][exporter]["endpoint"] == f"otel-llm:{settings.grpc_port}"
    assert config["exporters"][exporter]["tls"] == {"insecure": True}
    # ...and the gateway forwards to Jaeger's OTLP/gRPC port.
    assert settings.host == "0.0.0.0"
    assert settings.forward == "http://jaeger:4317"
    assert settings.forward_protocol == "grpc"
    assert "4317" in [str(p) for p in services()["jaeger"]["expose"]]


def test_direct_variant_sends_traces_straight_to_jaeger_over_otlp() -> None:
    config = collector("otelcol-direct.yaml")
    (exporter,) = pipelines(config)["traces"]["exporters"]
    assert exporter.split("/")[0] == "otlp_grpc"
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    endpoints = [e.get("endpoint", "") for e in config["exporters"].values()]
    assert not any("otel-llm" in e for e in endpoints)


def test_loadbalancing_variant_spreads_traces_over_every_gateway_replica() -> None:
    config = collector("otelcol-loadbalancing.yaml")
    (exporter,) = pipelines(config)["traces"]["exporters"]
    assert exporter.split("/")[0] == "loadbalancing"
    lb = config["exporters"][exporter]
    assert lb["routing_key"] == "traceID"
    assert lb["protocol"]["otlp"]["tls"] == {"insecure": True}
    # The DNS name is the compose service, so `--scale otel-llm=N` adds backends.
    assert lb["resolver"]["dns"]["hostname"] == "otel-llm"
    assert "otel-llm" in services()
    assert lb["resolver"]["dns"]["port"] == str(gateway_settings().grpc_port)


CONTENT_KEYS = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES,
                sc.GEN_AI_SYSTEM_INSTRUCTIONS, sc.GEN_AI_RETRIEVAL_QUERY_TEXT,
                "gen_ai.prompt.0.content", "gen_ai.completion.0.content",  # OpenLLMetry
                "input.value", "llm.input_messages.0.message.content")      # OpenInference
# What the gateway downstream needs to price and classify a call: never masked.
KEPT_KEYS = (sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_PROVIDER_NAME,
             sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_USAGE_INPUT_TOKENS,
             sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
             sc.GEN_AI_RESPONSE_FINISH_REASONS, sc.OTEL_LLM_COST_USD, sc.ERROR_TYPE,
             "gen_ai.prompt_tokens", "llm.token_count.prompt", sc.GEN_AI_DATA_SOURCE_ID)


def redaction(name: str) -> dict[str, Any]:
    config = collector(name)
    (processor,) = [p for p in pipelines(config)["traces"]["processors"]
                    if p.split("/")[0] == "redaction"]
    settings = config["processors"][processor]
    assert isinstance(settings, dict)
    return settings


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_redaction_masks_genai_content_and_keeps_what_pricing_needs(name: str) -> None:
    settings = redaction(name)
    assert settings["allow_all_keys"] is True  # an allow-list would drop unknown attributes
    patterns = [re.compile(p) for p in settings["blocked_key_patterns"]]
    for key in CONTENT_KEYS:
        assert any(p.search(key) for p in patterns), f"{name}: {key} is not masked"
    for key in KEPT_KEYS:
        assert not any(p.search(key) for p in patterns), f"{name}: {key} would be masked"


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_redaction_masks_secrets_in_values_but_not_ordinary_values(name: str) -> None:
    values = [re.compile(p) for p in redaction(name)["blocked_values"]]
    secrets = ("mail alice@example.com now", "sk-proj-AbCdEf0123456789xyzXYZ",
               "Authorization: Bearer eyJhbGciOi.J9.abc")
    for text in secrets:
        assert any(v.search(text) for v in values), text
    ordinary = ("gpt-4o-mini", "claude-sonnet-4-5", "text-embedding-3-small", "chat",
                "4bf92f3577b34da6a3ce929d0e0e4736", "rate_limit", "openai", "https://api.x.ai/v1")
    for text in ordinary:
        assert not any(v.search(text) for v in values), text


def test_variants_differ_only_where_documented() -> None:
    """The three files share receivers, processors and the metrics path, so a fix in one is
    not forgotten in the others."""
    base = collector("otelcol.yaml")
    for name in COLLECTOR_CONFIGS[1:]:
        other = collector(name)
        assert other["receivers"] == base["receivers"], name
        assert other["processors"] == base["processors"], name
        assert other["extensions"] == base["extensions"], name
        assert other["exporters"]["prometheus"] == base["exporters"]["prometheus"], name
        assert pipelines(other)["metrics"] == pipelines(base)["metrics"], name
        assert other["service"]["telemetry"] == base["service"]["telemetry"], name
