"""The ``opentelemetry-instrument`` configurator: ``OTEL_PYTHON_CONFIGURATOR=otel_llm``.

Under ``opentelemetry-instrument python app.py`` it runs :func:`otel_llm.configure` from the
environment (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``…_PROTOCOL``,
``OTEL_LLM_*``): global providers whose exporter sits behind the
:class:`~otel_llm.LLMSpanProcessor`, so spans of *other* instrumentations get cost and error
category too. Instrumentors are left to ``opentelemetry-instrument`` itself (entry points
``otel_llm_openai``, ``otel_llm_anthropic``), so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
is honoured. When no other configurator is installed, this one is picked without the variable.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["OtelLLMConfigurator"]

_lock = threading.Lock()
_telemetry: Any = None


class OtelLLMConfigurator:
    """Entry point ``opentelemetry_configurator: otel_llm``. ``configure()`` runs once."""

    def configure(self, **kwargs: Any) -> None:
        global _telemetry
        with _lock:
            if _telemetry is not None:
                return
            import otel_llm

            # The providers flush and shut down at exit by themselves (shutdown_on_exit).
            _telemetry = otel_llm.configure(instrument=False)
