from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from tests.conftest import Harness
from tests.instrumentation.llm_fakes import OpenSpans


@pytest.fixture
def open_spans(harness: Harness) -> Iterator[OpenSpans]:
    """Fails the test if any span is still open once the test's objects are collected."""
    tracker = OpenSpans()
    harness.tracer_provider.add_span_processor(tracker)
    yield tracker
    gc.collect()
    assert tracker.open == {}, f"spans left open: {tracker.open}"


def _instrument(instrumentor: Any, harness: Harness, **kwargs: Any) -> Any:
    instrumentor.instrument(tracer_provider=harness.tracer_provider,
                            meter_provider=harness.meter_provider, **kwargs)
    return instrumentor


@pytest.fixture
def openai_instrumented(harness: Harness, open_spans: OpenSpans) -> Iterator[OpenAIInstrumentor]:
    instrumentor = _instrument(OpenAIInstrumentor(), harness)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def anthropic_instrumented(harness: Harness,
                           open_spans: OpenSpans) -> Iterator[AnthropicInstrumentor]:
    instrumentor = _instrument(AnthropicInstrumentor(), harness)
    yield instrumentor
    instrumentor.uninstrument()
