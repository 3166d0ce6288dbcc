"""The OTLP gateway (``otel-llm serve``), shaped like the OpenTelemetry Collector.

Receivers (OTLP/gRPC, OTLP/HTTP) → enrich processor (cost and error attributes added to GenAI
spans in place) → bounded queue (memory or SQLite) → exporter (OTLP/gRPC or HTTP, with retry).
See :class:`Gateway` to embed it, and the README's gateway section for operations.
"""

from otel_llm.gateway.component import Batch, Component, Consumer
from otel_llm.gateway.config import GatewaySettings
from otel_llm.gateway.service import Gateway, check_protobuf_backend

__all__ = [
    "Gateway",
    "GatewaySettings",
    "Batch",
    "Component",
    "Consumer",
    "check_protobuf_backend",
]
