"""Settings resolution: argument, else ``OTEL_*`` / ``OTEL_LLM_*`` environment, else default."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
ENV_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENV_PRICES = "OTEL_LLM_PRICES"
ENV_RULES = "OTEL_LLM_RULES"
ENV_PROMETHEUS_PORT = "OTEL_LLM_PROMETHEUS_PORT"
ENV_PROMETHEUS_HOST = "OTEL_LLM_PROMETHEUS_HOST"
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
ENV_LOGS_EXPORTER = "OTEL_LOGS_EXPORTER"
ENV_LOGS_ENDPOINT = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"

PROTOCOLS = ("grpc", "http/protobuf")


def first(*values: str | None) -> str | None:
    """The first value that is set and not blank."""
    for value in values:
        if value is not None and value.strip():
            return value.strip()
    return None


def env(name: str) -> str | None:
    return first(os.environ.get(name))


def exporter_off(name: str) -> bool:
    """True when ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` says ``none``."""
    return (env(name) or "").lower() == "none"


def resolve_protocol(protocol: str | None, endpoint: str | None) -> str:
    """Argument, else env; unset: ``http/protobuf`` for port 4318, else ``grpc``."""
    value = first(protocol, env(ENV_TRACES_PROTOCOL), env(ENV_PROTOCOL))
    if value is None:
        port = _port(endpoint)
        return "http/protobuf" if port == 4318 else "grpc"
    if value not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {value!r}")
    return value


def signal_endpoint(base: str, protocol: str, path: str) -> str:
    """The per-signal URL for a base endpoint (``/v1/traces`` is appended for http/protobuf)."""
    _check_url(base)
    if protocol == "grpc":
        return base
    return base.rstrip("/") + path


def resolve_port(value: int | str | None, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} must be between 0 and 65535, got {port}")
    return port


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint must be an http:// or https:// URL, got {url!r}")


def _port(url: str | None) -> int | None:
    if not url:
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        return None
