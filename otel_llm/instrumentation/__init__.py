"""Auto-instrumentors for LLM client libraries, one module per library (mapping only)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger("otel_llm")

# name → (module that must be importable, "otel_llm module:Instrumentor class")
INSTRUMENTORS: Mapping[str, tuple[str, str]] = {
    "openai": ("openai", "otel_llm.instrumentation.openai:OpenAIInstrumentor"),
    "anthropic": ("anthropic", "otel_llm.instrumentation.anthropic:AnthropicInstrumentor"),
}


def instrument_all(
    names: Sequence[str] | None, **kwargs: Any
) -> list[Any]:
    """Instrument the named libraries (None: every supported one that is installed)."""
    unknown = sorted(set(names or ()) - set(INSTRUMENTORS))
    if unknown:
        raise ValueError(f"unknown instrumentations {unknown}; known: {sorted(INSTRUMENTORS)}")
    done = []
    for name, (library, target) in INSTRUMENTORS.items():
        if names is not None and name not in names:
            continue
        if importlib.util.find_spec(library) is None:
            if names is not None:
                raise ValueError(f"cannot instrument {name}: {library} is not installed")
            continue
        module_name, _, class_name = target.partition(":")
        instrumentor = getattr(importlib.import_module(module_name), class_name)()
        instrumentor.instrument(**kwargs)
        done.append(instrumentor)
    return done
