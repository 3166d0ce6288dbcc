"""Fixtures for the gateway tests: loopback sinks and gateways on ephemeral ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_llm.gateway import Gateway, GatewaySettings
from tests.gateway.gateway_support import RawGrpcSink, RawHttpSink


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_LLM_* from the developer's shell must not leak into settings."""
    for name in list(os.environ):
        if name.startswith("OTEL_LLM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def grpc_sink() -> Iterator[RawGrpcSink]:
    sink = RawGrpcSink()
    yield sink
    sink.close()


@pytest.fixture
def http_sink() -> Iterator[RawHttpSink]:
    sink = RawHttpSink()
    yield sink
    sink.close()


_GATEWAY_KWARGS = ("sender", "accountant", "observers", "prices", "registry", "meter_provider")


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., Gateway]]:
    """Build (and start) gateways on free loopback ports with fast retries; all are shut down
    after the test. Keyword arguments are GatewaySettings fields, plus Gateway's own
    (``sender``, ``accountant``, ...) and ``start=False``."""
    gateways: list[Gateway] = []

    def make(*, start: bool = True, **kwargs: Any) -> Gateway:
        extra = {k: kwargs.pop(k) for k in _GATEWAY_KWARGS if k in kwargs}
        kwargs.setdefault("grpc_port", 0)
        kwargs.setdefault("http_port", 0)
        kwargs.setdefault("retry_initial", 0.05)
        kwargs.setdefault("retry_max", 0.2)
        kwargs.setdefault("shutdown_timeout", 2.0)
        kwargs.setdefault("export_timeout", 2.0)
        gateway = Gateway(GatewaySettings(**kwargs), **extra)
        gateways.append(gateway)
        if start:
            gateway.start()
        return gateway

    yield make
    for gateway in gateways:
        gateway.shutdown()
