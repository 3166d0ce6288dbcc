"""Pricing: parity with genai-prices, resolution of provider/model names, overrides, memoization,
and the arithmetic's properties (cost >= 0, monotone, additive, cached tokens counted once)."""

from __future__ import annotations

import dataclasses
import logging
import math
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import DataSnapshot, get_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm.core import pricing
from otel_llm.core.price_sheet import describe
from otel_llm.core.pricing import PriceTable, Rates
from otel_llm.core.types import UNKNOWN_COST, Cost, LLMCall

TABLE = PriceTable()  # shared: hypothesis tests must not use function-scoped fixtures


def _call(provider: str | None, model: str | None, usage: tuple[int, int, int, int]) -> LLMCall:
    inp, cache_read, cache_write, out = usage
    return LLMCall(
        operation="chat",
        provider=provider,
        request_model=model,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
    )


def _reference(model: str, provider_id: str, usage: tuple[int, int, int, int]) -> Any:
    inp, cache_read, cache_write, out = usage
    return calc_price(
        Usage(
            input_tokens=inp,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=out,
        ),
        model,
        provider_id=provider_id,
    )


# (gen_ai.provider.name, model, genai-prices provider id, (input incl. cached, cache read,
#  cache write, output))
PARITY = [
    ("openai", "gpt-4o", "openai", (12_000, 8_192, 0, 700)),
    ("OpenAI", "gpt-4o-2024-08-06", "openai", (1_500, 0, 0, 250)),
    ("openai", "gpt-4o-mini", "openai", (40_000, 30_000, 0, 1_000)),
    ("openai", "o3-mini", "openai", (5_000, 1_024, 0, 9_000)),
    ("anthropic", "claude-sonnet-4-5", "anthropic", (150_000, 100_000, 20_000, 3_000)),
    ("anthropic", "claude-sonnet-4-5-20250929", "anthropic", (200_000, 0, 0, 100)),
    ("anthropic", "claude-sonnet-4-5", "anthropic", (200_001, 120_000, 30_000, 4_000)),
    ("anthropic", "claude-3-5-haiku-latest", "anthropic", (9_000, 4_000, 2_000, 800)),
    ("gcp.gemini", "gemini-2.5-flash", "google", (20_000, 10_000, 0, 2_000)),
    ("gcp.vertex_ai", "gemini-2.5-pro", "google", (300_000, 100_000, 0, 5_000)),
    ("openai", "text-embedding-3-small", "openai", (5_000, 0, 0, 0)),
    ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "aws", (3_000, 1_000, 500, 200)),
    ("perplexity", "sonar", "perplexity", (1_000, 0, 0, 500)),  # + a per-request fee
    ("x_ai", "grok-3", "x-ai", (2_000, 1_000, 0, 300)),
    ("mistral_ai", "mistral-large-latest", "mistral", (2_000, 0, 0, 300)),
]


@pytest.mark.parametrize(("provider", "model", "provider_id", "usage"), PARITY)
def test_price_matches_genai_prices(
    provider: str, model: str, provider_id: str, usage: tuple[int, int, int, int]
) -> None:
    ref = _reference(model, provider_id, usage)
    cost = TABLE.price(_call(provider, model, usage))
    assert cost.source == "price_table"
    assert cost.total_usd == pytest.approx(float(ref.total_price), rel=1e-12, abs=0)
    # genai-prices books a per-request fee under no direction; we book it as input.
    fee = float(ref.total_price - ref.input_price - ref.output_price)
    assert cost.input_usd == pytest.approx(float(ref.input_price) + fee, rel=1e-12, abs=0)
    assert cost.output_usd == pytest.approx(float(ref.output_price), rel=1e-12, abs=0)
    assert cost.total_usd == cost.input_usd + cost.output_usd  # type: ignore[operator]


def test_tier_is_a_cliff_on_total_input_tokens() -> None:
    rates = TABLE.rates("anthropic", "claude-sonnet-4-5")
    assert rates is not None and rates.tiers
    below = TABLE.cost(rates, input_tokens=200_000, output_tokens=1_000)
    above = TABLE.cost(rates, input_tokens=200_001, output_tokens=1_000)
    # Crossing the threshold re-prices every token, output included.
    assert above.output_usd == pytest.approx(1_000 * rates.tiers[0][2] / 1e6)
    assert above.total_usd > 1.9 * below.total_usd  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from([("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic")]),
    uncached=st.integers(0, 400_000),
    cache_read=st.integers(0, 100_000),
    cache_write=st.integers(0, 100_000),
    out=st.integers(0, 100_000),
)
def test_price_matches_genai_prices_for_any_usage(
    model: tuple[str, str], uncached: int, cache_read: int, cache_write: int, out: int
) -> None:
    usage = (uncached + cache_read + cache_write, cache_read, cache_write, out)
    ref = float(_reference(*model, usage).total_price)
    assert TABLE.price(_call(model[1], model[0], usage)).total_usd == pytest.approx(ref, rel=1e-12)


# -- resolution of provider and model names --------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "provider_id", "model_id"),
    [
        ("azure.ai.openai", "gpt-4o", "azure", "gpt-4o"),
        ("azure_openai", "gpt-4o-mini-2024-07-18", "azure", "gpt-4o-mini"),
        ("aws.bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "aws", None),
        ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "aws", None),
        ("gcp.vertex_ai", "claude-3-5-haiku@20241022", "google", "claude-3-5-haiku"),
        ("vertex_ai", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
        ("gcp.gen_ai", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
        ("google", "gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("mistralai", "mistral-large-latest", "mistral", "mistral-large"),
        ("xai", "grok-3", "x-ai", "grok-3"),
        ("deepseek", "deepseek-chat", "deepseek", "deepseek-chat"),
        ("groq", "llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
        ("cohere", "command-r-plus", "cohere", "command-r-plus"),
        ("Anthropic", "Claude-3-5-Haiku-Latest", "anthropic", "claude-3-5-haiku-latest"),
        (None, "gpt-4o", "openai", "gpt-4o"),  # no provider: guessed from the model name
        ("ibm.watsonx.ai", "claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
        ("openai", "openai/gpt-4o", "openai", "gpt-4o"),  # LiteLLM prefix
        (None, "anthropic/claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
        ("litellm", "azure/gpt-4o", "azure", "gpt-4o"),
        (None, "openrouter/openai/gpt-4o", "openrouter", "openai/gpt-4o"),
    ],
)
def test_resolves_provider_and_model_spellings(
    provider: str | None, model: str, provider_id: str, model_id: str | None
) -> None:
    rates = TABLE.rates(provider, model)
    assert rates is not None
    assert rates.provider_id == provider_id
    if model_id is not None:
        assert rates.model_id == model_id


def test_azure_prices_equal_openai_prices_for_the_same_model() -> None:
    azure = TABLE.rates("azure.ai.openai", "gpt-4o-mini")
    openai = TABLE.rates("openai", "gpt-4o-mini")
    assert azure is not None and openai is not None
    assert (azure.input, azure.output, azure.cache_read) == (
        openai.input,
        openai.output,
        openai.cache_read,
    )


def test_azure_falls_back_to_openai_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    # A snapshot whose azure entry neither lists the model nor falls back by itself (and a model
    # genai-prices cannot guess the provider of).
    real = get_snapshot()
    bare = [
        dataclasses.replace(p, models=[], fallback_model_providers=None) if p.id == "azure" else p
        for p in real.providers
    ]
    snapshot = DataSnapshot(providers=bare, from_auto_update=False)
    monkeypatch.setattr(pricing, "get_snapshot", lambda: snapshot)
    rates = PriceTable().rates("azure.ai.openai", "text-embedding-3-small")
    assert rates is not None
    assert (rates.provider_id, rates.model_id) == ("openai", "text-embedding-3-small")


def test_azure_deployment_alias_and_request_model_fallback() -> None:
    table = PriceTable(aliases={"Prod-GPT4o": "gpt-4o"})
    usage = (1_000, 0, 0, 100)
    expected = float(_reference("gpt-4o", "azure", usage).total_price)
    deployment = _call("azure.ai.openai", "prod-gpt4o", usage)
    assert table.price(deployment).total_usd == pytest.approx(expected, rel=1e-12)
    # A proxy that answers with its own model name: the requested model still prices the call.
    proxied = LLMCall(
        operation="chat",
        provider="azure.ai.openai",
        request_model="gpt-4o",
        response_model="my-proxy-internal-name",
        input_tokens=1_000,
        output_tokens=100,
    )
    assert table.price(proxied).total_usd == pytest.approx(expected, rel=1e-12)


def test_alias_target_may_carry_a_provider_prefix() -> None:
    table = PriceTable(aliases={"my-proxy/fast": "anthropic/claude-3-5-haiku-latest"})
    rates = table.rates("openai", "my-proxy/fast")  # an OpenAI-compatible proxy
    assert rates is not None
    assert (rates.provider_id, rates.model_id) == ("anthropic", "claude-3-5-haiku-latest")


# -- unknown models, odd token counts, never raising --------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "no-such-model-xyz"), (None, "llama3"), ("openai", "tts-1"), ("acme", "")],
)
def test_unknown_model_is_unknown_cost_never_zero(provider: str | None, model: str) -> None:
    assert TABLE.price(_call(provider, model, (1_000, 0, 0, 100))) == UNKNOWN_COST
    assert TABLE.rates(provider, model) is None


def test_no_model_and_no_default_table_are_unknown() -> None:
    assert TABLE.price(LLMCall(operation="retrieval")) == UNKNOWN_COST
    bare = PriceTable(default_table=False)
    assert bare.price(_call("openai", "gpt-4o", (10, 0, 0, 10))) == UNKNOWN_COST


def test_none_and_negative_token_counts() -> None:
    none = LLMCall(operation="chat", provider="openai", request_model="gpt-4o")
    assert TABLE.price(none) == Cost(0.0, 0.0, 0.0, "price_table")
    negative = _call("openai", "gpt-4o", (-5, -3, -1, -7))
    assert TABLE.price(negative) == Cost(0.0, 0.0, 0.0, "price_table")


def test_cached_tokens_reported_outside_input_are_still_counted_once() -> None:
    rates = Rates(3.0, 15.0, 0.3, 3.75, source="override")
    # Anthropic's raw shape: 10 uncached + 1000 read + 100 written, input_tokens=10.
    cost = TABLE.cost(
        rates, input_tokens=10, output_tokens=0, cache_read_tokens=1000, cache_creation_tokens=100
    )
    assert cost.input_usd == pytest.approx((1000 * 0.3 + 100 * 3.75) / 1e6)


def test_price_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    bad = _call("openai", "gpt-4o", (0, 0, 0, 0))
    object.__setattr__(bad, "input_tokens", "lots")
    with caplog.at_level(logging.WARNING, logger="otel_llm.core.pricing"):
        assert table.price(bad) == UNKNOWN_COST
        assert table.price(bad) == UNKNOWN_COST
    assert len(caplog.records) == 1  # logged once, not per span


# -- memoization ------------------------------------------------------------------------------


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Records every genai-prices model lookup."""
    seen: list[tuple[str, str | None]] = []
    original = DataSnapshot.find_provider_model

    def spy(self: DataSnapshot, model_ref: str, provider: Any, provider_id: Any, url: Any) -> Any:
        seen.append((model_ref, provider_id))
        return original(self, model_ref, provider, provider_id, url)

    monkeypatch.setattr(DataSnapshot, "find_provider_model", spy)
    return seen


def test_lookup_happens_once_per_provider_and_model(lookups: list[Any]) -> None:
    table = PriceTable()
    call = _call("openai", "gpt-4o", (100, 0, 0, 10))
    for _ in range(50):
        table.price(call)
    assert lookups == [("gpt-4o", "openai")]
    for _ in range(50):
        assert table.price(_call("openai", "no-such-model-xyz", (1, 0, 0, 1))) == UNKNOWN_COST
    misses = len(lookups)
    table.price(_call("openai", "no-such-model-xyz", (1, 0, 0, 1)))
    assert len(lookups) == misses  # negative answers are cached too


def test_cache_is_a_bounded_lru(lookups: list[Any]) -> None:
    table = PriceTable(cache_size=2)
    table.rates("openai", "gpt-4o")
    table.rates("openai", "gpt-4o-mini")
    table.rates("openai", "gpt-4o")  # most recently used now
    table.rates("openai", "o3-mini")  # evicts gpt-4o-mini
    before = len(lookups)
    table.rates("openai", "gpt-4o")
    assert len(lookups) == before
    table.rates("openai", "gpt-4o-mini")
    assert len(lookups) == before + 1


def test_time_of_day_prices_follow_the_clock(lookups: list[Any]) -> None:
    # deepseek-chat is cheaper off-peak (16:30-00:30 UTC).
    now = [datetime(2026, 3, 2, 18, 0, tzinfo=timezone.utc).timestamp()]
    table = PriceTable(clock=lambda: now[0])
    usage = (100_000, 20_000, 0, 10_000)

    def expected() -> float:
        ts = datetime.fromtimestamp(now[0], tz=timezone.utc)
        u = Usage(input_tokens=usage[0], cache_read_tokens=usage[1], output_tokens=usage[3])
        return float(
            calc_price(
                u, "deepseek-chat", provider_id="deepseek", genai_request_timestamp=ts
            ).total_price
        )

    off_peak = table.price(_call("deepseek", "deepseek-chat", usage)).total_usd
    assert off_peak == pytest.approx(expected(), rel=1e-12)
    resolved = len(lookups)
    now[0] += 30  # still within the entry's validity: no new lookup
    assert table.price(_call("deepseek", "deepseek-chat", usage)).total_usd == off_peak
    assert len(lookups) == resolved
    now[0] += 16 * 3600  # next day, 10:00 UTC: peak price
    peak = table.price(_call("deepseek", "deepseek-chat", usage)).total_usd
    assert peak == pytest.approx(expected(), rel=1e-12)
    assert peak > off_peak  # type: ignore[operator]


# -- override file ----------------------------------------------------------------------------

OVERRIDES = """\
models:
  - model: ft:gpt-4o-mini:acme:support:abc123
    provider: openai
    input: 0.30
    output: 1.20
    cache_read: 0.15
    cache_write: 0.375
  - model: GPT-4o
    input: 1
    output: 2
  - model: llama3
    provider: ollama
    input: 0
    output: 0
aliases:
  prod-gpt4o: gpt-4o
  fast: anthropic/claude-3-5-haiku-latest
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_override_file_wins_over_the_table(tmp_path: Path) -> None:
    table = PriceTable.from_file(_write(tmp_path, OVERRIDES))
    cost = table.price(_call("openai", "gpt-4o", (1_000_000, 0, 0, 1_000_000)))
    assert cost == Cost(3.0, 1.0, 2.0, "override")
    # The override has no provider: it applies whatever serves the model, aliases included.
    assert table.price(_call("azure.ai.openai", "prod-gpt4o", (1_000_000, 0, 0, 0))).total_usd == 1
    # A prefixed name reaches the override too.
    assert table.price(_call(None, "openai/gpt-4o", (0, 0, 0, 1_000_000))).total_usd == 2


def test_override_fine_tune_with_cache_prices(tmp_path: Path) -> None:
    table = PriceTable.from_file(_write(tmp_path, OVERRIDES))
    call = _call("openai", "FT:gpt-4o-mini:acme:support:abc123", (1_000_000, 400_000, 100_000, 0))
    cost = table.price(call)
    assert cost.source == "override"
    assert cost.input_usd == pytest.approx(0.5 * 0.30 + 0.4 * 0.15 + 0.1 * 0.375)
    # Scoped to provider openai: another provider does not get it.
    assert table.rates("anthropic", "ft:gpt-4o-mini:acme:support:abc123") is None


def test_override_for_a_provider_unknown_to_genai_prices(tmp_path: Path) -> None:
    table = PriceTable.from_file(_write(tmp_path, OVERRIDES))
    assert table.price(_call("ollama", "llama3", (10, 0, 0, 10))) == Cost(0.0, 0.0, 0.0, "override")
    assert table.price(_call(None, "ollama/llama3", (10, 0, 0, 10))).source == "override"
    assert table.rates("openai", "llama3") is None  # not any provider's llama3


def test_override_alias_to_a_table_model(tmp_path: Path) -> None:
    table = PriceTable.from_file(_write(tmp_path, OVERRIDES))
    rates = table.rates("openai", "fast")
    assert rates is not None and rates.source == "price_table"
    assert rates.model_id == "claude-3-5-haiku-latest"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "models:\n  - {model: a, input: 1, output: 1}\n  - {model: b, input: -1, output: 1}\n",
            "models[1].input",
        ),
        ("models:\n  - {model: a, input: 1}\n", "models[0].output"),
        ("models:\n  - {model: a, input: .nan, output: 1}\n", "models[0].input"),
        ("models:\n  - {model: a, input: .inf, output: 1}\n", "models[0].input"),
        ("models:\n  - {model: a, input: '1', output: 1}\n", "models[0].input"),
        ("models:\n  - {model: a, input: 1, output: 1, currency: EUR}\n", "models[0].currency"),
        ("models:\n  - {model: '', input: 1, output: 1}\n", "models[0].model"),
        (
            "models:\n  - {model: a, input: 1, output: 1}\n  - {model: A, input: 2, output: 2}\n",
            "models[1].model",
        ),
        ("prices: []\n", "prices"),
        ("models: {model: a}\n", "models"),
        ("aliases:\n  prod: 5\n", "aliases.prod"),
        ("- just a list\n", "(top level)"),
        ("models: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_override_file_names_file_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=r"prices\.yaml") as info:
        PriceTable.from_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert where in str(info.value)


def test_empty_override_file_is_an_empty_override_table(tmp_path: Path) -> None:
    table = PriceTable.from_file(_write(tmp_path, ""))
    rates = table.rates("openai", "gpt-4o")
    assert rates is not None and rates.source == "price_table"


# -- describe ---------------------------------------------------------------------------------


def test_describe_known_tiered_model() -> None:
    text = describe(TABLE, "claude-sonnet-4-5-20250929", "anthropic")
    assert "claude-sonnet-4-5" in text and "anthropic" in text
    assert f"genai-prices {genai_prices.__version__}" in text
    assert "$3" in text and "$15" in text and "$0.3" in text and "$3.75" in text
    assert "above 200,000 input tokens" in text and "$22.5" in text


def test_describe_override_and_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path, OVERRIDES)
    table = PriceTable.from_file(path)
    assert f"override file {path}" in describe(table, "gpt-4o")
    unknown = describe(table, "no-such-model-xyz", "openai")
    assert unknown.startswith("unknown model: no-such-model-xyz (provider openai)")
    assert str(path) in unknown


# -- properties of the arithmetic -------------------------------------------------------------

_RATE = st.floats(0, 100, allow_nan=False)
_RATES = st.builds(
    lambda i, o, r, w: Rates(i, o, r, w, source="override"),
    _RATE,
    _RATE,
    st.none() | _RATE,
    st.none() | _RATE,
)
_COUNT = st.integers(0, 2_000_000)
_GPT4O = TABLE.rates("openai", "gpt-4o")
_SONNET = TABLE.rates("anthropic", "claude-sonnet-4-5")
assert _GPT4O is not None and _SONNET is not None and _SONNET.tiers and not _GPT4O.tiers
_TIER = _SONNET.tiers[0][0]


def _total(rates: Rates, uncached: int, read: int, write: int, out: int) -> float:
    cost = TABLE.cost(
        rates,
        input_tokens=uncached + read + write,
        output_tokens=out,
        cache_read_tokens=read,
        cache_creation_tokens=write,
    )
    assert cost.total_usd is not None
    return cost.total_usd


@given(
    rates=_RATES, counts=st.lists(st.none() | st.integers(-(10**6), 10**7), min_size=4, max_size=4)
)
def test_cost_is_never_negative(rates: Rates, counts: list[int | None]) -> None:
    inp, out, read, write = counts
    cost = TABLE.cost(
        rates,
        input_tokens=inp,
        output_tokens=out,  # type: ignore[arg-type]
        cache_read_tokens=read,
        cache_creation_tokens=write,
    )  # type: ignore[arg-type]
    assert cost.total_usd is not None and cost.input_usd is not None and cost.output_usd is not None
    assert cost.total_usd >= 0 and cost.input_usd >= 0 and cost.output_usd >= 0


@given(
    rates=st.sampled_from([_GPT4O, _SONNET]) | _RATES,
    base=st.lists(st.integers(0, _TIER // 4), min_size=4, max_size=4),
    which=st.integers(0, 3),
    extra=st.integers(0, _TIER // 4),
)
def test_cost_is_monotone_in_each_token_count(
    rates: Rates, base: list[int], which: int, extra: int
) -> None:
    # Components: uncached input, cache read, cache write, output. Their input sum stays within
    # the first tier, so the tiered model is compared inside one tier.
    more = list(base)
    more[which] += extra
    assert _total(rates, *more) >= _total(rates, *base)


@given(
    rates=st.sampled_from([_GPT4O]) | _RATES,
    a=st.lists(_COUNT, min_size=4, max_size=4),
    b=st.lists(_COUNT, min_size=4, max_size=4),
)
def test_cost_is_additive_for_untiered_models(rates: Rates, a: list[int], b: list[int]) -> None:
    both = [x + y for x, y in zip(a, b, strict=True)]
    assert math.isclose(
        _total(rates, *a) + _total(rates, *b), _total(rates, *both), rel_tol=1e-12, abs_tol=1e-15
    )


@given(
    rates=st.sampled_from([_GPT4O, _SONNET]),
    inp=st.integers(0, 1_000_000),
    share=st.floats(0, 1),
    out=_COUNT,
)
def test_cached_tokens_are_never_double_counted(
    rates: Rates, inp: int, share: float, out: int
) -> None:
    read = int(inp * share)
    assert rates.cache_read is not None and rates.cache_read < rates.input
    cached = TABLE.cost(rates, input_tokens=inp, output_tokens=out, cache_read_tokens=read)
    plain = TABLE.cost(rates, input_tokens=inp, output_tokens=out)
    assert cached.total_usd is not None and plain.total_usd is not None
    assert cached.total_usd <= plain.total_usd
    if not rates.tiers or inp <= rates.tiers[0][0]:
        saved = read * (rates.input - rates.cache_read) / 1e6
        assert math.isclose(plain.total_usd - cached.total_usd, saved, rel_tol=1e-9, abs_tol=1e-12)
