"""instrument / uninstrument / suppress, and the configure(instrument=...) registry."""

from __future__ import annotations

import pytest
import wrapt
from openai.resources.chat.completions import Completions
from opentelemetry.instrumentation.utils import suppress_instrumentation

import otel_llm
from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm.core.pricing import PriceTable
from otel_llm.instrumentation import INSTRUMENTORS
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from tests.conftest import Harness, make_harness
from tests.instrumentation.llm_fakes import (
    CLAUDE,
    OPENAI_HTTP,
    AnthropicServer,
    OpenAIServer,
    anthropic_client,
    chat_completion,
    openai_client,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def call(client: object) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[attr-defined]


def test_instrument_uninstrument_instrument_patches_once(harness: Harness) -> None:
    original = Completions.__dict__["create"]
    client = openai_client(OpenAIServer())
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=harness.tracer_provider)
    instrumentor.instrument(tracer_provider=harness.tracer_provider)  # a no-op, warned
    call(client)
    assert len(harness.spans()) == 1

    instrumentor.uninstrument()
    assert Completions.__dict__["create"] is original
    call(client)
    assert len(harness.spans()) == 1  # unpatched: no span

    instrumentor.instrument(tracer_provider=harness.tracer_provider)
    try:
        patched = Completions.__dict__["create"]
        assert isinstance(patched, wrapt.FunctionWrapper)
        assert patched.__wrapped__ is original  # one wrapper, not a wrapper of a wrapper
        call(client)
        assert len(harness.spans()) == 2
    finally:
        instrumentor.uninstrument()


def test_someone_wrapping_on_top_keeps_working_and_we_stop(harness: Harness) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=harness.tracer_provider)
    seen: list[str] = []

    def theirs(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append("theirs")
        return wrapped(*args, **kwargs)

    ours = Completions.__dict__["create"]
    wrapt.wrap_function_wrapper(Completions, "create", theirs)
    try:
        instrumentor.uninstrument()  # ours is below theirs: it becomes a pass-through
        instrumentor.instrument(tracer_provider=harness.tracer_provider)
        call(openai_client(OpenAIServer()))
        assert seen == ["theirs"]
        assert len(harness.spans()) == 1  # the new wrapper's span only, not a second one
    finally:
        instrumentor.uninstrument()
        Completions.create = ours.__wrapped__  # type: ignore[method-assign]


@pytest.mark.usefixtures("openai_instrumented")
def test_suppress_instrumentation_is_honoured(harness: Harness) -> None:
    client = openai_client(OpenAIServer())
    with suppress_instrumentation():
        call(client)
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert harness.spans() == ()
    call(client)
    assert len(harness.spans()) == 1


@pytest.mark.usefixtures("anthropic_instrumented")
def test_suppress_instrumentation_anthropic_stream_helper(harness: Harness) -> None:
    client = anthropic_client(AnthropicServer())
    with suppress_instrumentation(), client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=MESSAGES
    ) as stream:
        stream.until_done()
    assert harness.spans() == ()


def test_registry_names_both_instrumentors() -> None:
    assert INSTRUMENTORS["openai"] == (
        "openai", "otel_llm.instrumentation.openai:OpenAIInstrumentor")
    assert INSTRUMENTORS["anthropic"] == (
        "anthropic", "otel_llm.instrumentation.anthropic:AnthropicInstrumentor")


def test_configure_instrument_true_shares_configures_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # A deployment name only the user's price table knows (an alias of gpt-4o).
    harness = make_harness(prices=PriceTable(aliases={"my-gpt": "openai/gpt-4o"}))
    harness.telemetry.shutdown()
    telemetry = otel_llm.configure(tracer_provider=harness.tracer_provider,
                                   meter_provider=harness.meter_provider, instrument=True,
                                   prices=PriceTable(aliases={"my-gpt": "openai/gpt-4o"}))
    try:
        kinds = {type(i) for i in telemetry.instrumentors}
        assert kinds == {OpenAIInstrumentor, AnthropicInstrumentor}
        answer = {**chat_completion(), "model": "my-gpt"}
        server = OpenAIServer(override=lambda r: OPENAI_HTTP.Response(200, json=answer))
        client = openai_client(server)
        client.chat.completions.create(model="my-gpt", messages=MESSAGES)
        attrs = harness.span().attributes or {}
        assert attrs[sc.OTEL_LLM_COST_SOURCE] == "price_table"
        assert attrs[sc.OTEL_LLM_COST_USD] > 0
    finally:
        telemetry.shutdown()
        _runtime.install(None)
    # shutdown() uninstrumented them.
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)
