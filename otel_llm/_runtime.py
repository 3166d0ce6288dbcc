"""What the hooks write to: a tracer, the accountant, and the content-capture switch.

Set by :func:`otel_llm.configure`; until then the hooks use the global OpenTelemetry providers,
so a service that configured OpenTelemetry itself still gets spans and metrics.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from otel_llm.accounting import Accountant
from otel_llm.version import __version__

TRACER_NAME = "otel_llm"
ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Runtime:
    tracer: Tracer
    accountant: Accountant
    capture_content: bool = False
    content_max_length: int = 8192

    @classmethod
    def create(
        cls,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        accountant: Accountant | None = None,
        capture_content: bool | None = None,
    ) -> Runtime:
        return cls(
            tracer=trace.get_tracer(TRACER_NAME, __version__, tracer_provider),
            accountant=accountant or Accountant(meter_provider=meter_provider),
            capture_content=(
                env_flag(ENV_CAPTURE_CONTENT) if capture_content is None else capture_content
            ),
        )


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """The runtime installed by ``configure()``, else one over the global providers."""
    global _current
    runtime = _current
    if runtime is None:
        with _lock:
            if _current is None:
                _current = Runtime.create()
            runtime = _current
    return runtime


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one the hooks use (None: back to the global providers)."""
    global _current
    with _lock:
        _current = runtime
