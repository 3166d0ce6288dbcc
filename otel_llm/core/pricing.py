"""Prices: the USD cost of one LLM call, from genai-prices and an optional override file.

Contract
--------
- ``PriceTable.rates(provider, model)`` resolves a model once per ``(provider, model)`` into plain
  float ``Rates`` (USD per million tokens) and memoizes the answer, unknown models included, in a
  bounded LRU: genai-prices' own lookup costs ~0.2 ms, a warm ``price(call)`` a few µs.
- ``PriceTable.cost`` reproduces genai-prices' arithmetic with floats: ``input_tokens`` *includes*
  cache-read and cache-write tokens; uncached input is billed at the input rate, cache reads at the
  cache-read rate and cache writes at the cache-write rate (each falling back to the input rate
  when the model has no such price), output at the output rate. A tiered model is a "cliff": when
  the call's total input tokens exceed a tier's threshold, that tier's rates apply to *all* its
  tokens. A cached token is never counted twice.
- An unknown model is ``UNKNOWN_COST`` (never a silent 0). ``price`` never raises: ``None`` token
  counts count as 0, negative ones are clamped to 0.

Resolution of a ``(provider, model)`` pair
------------------------------------------
Provider names are OpenTelemetry ``gen_ai.provider.name`` values (``azure.ai.openai``,
``aws.bedrock``, ``gcp.vertex_ai``, ...) or older spellings (``azure_openai``, ``bedrock``,
``mistralai``, ...), mapped to genai-prices provider ids. Model names are case-insensitive;
``provider/model`` prefixes (LiteLLM, OpenRouter) are split off and retried; user aliases map
deployment names to priced models. Override models win over genai-prices; Azure OpenAI falls
back to OpenAI prices; an unknown provider (or none) lets genai-prices guess from the model name.

Override file (YAML)
--------------------
::

    models:
      - model: ft:gpt-4o-mini:acme:support:abc123   # required, case-insensitive
        provider: openai      # optional; omitted = any provider
        input: 0.30           # USD per million input tokens (required)
        output: 1.20          # USD per million output tokens (required)
        cache_read: 0.15      # optional; omitted = cache reads billed as input
        cache_write: 0.375    # optional; omitted = cache writes billed as input
    aliases:                  # deployment / proxy name -> priced model (may carry "provider/")
      prod-gpt4o: gpt-4o
      my-proxy/fast: anthropic/claude-3-5-haiku-latest

Prices are numbers >= 0 (strings, NaN and infinity are rejected); unknown keys are errors.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import ModelInfo, TieredPrices

from otel_llm.core.price_file import read_price_file
from otel_llm.core.types import UNKNOWN_COST, Cost, CostSource, LLMCall

__all__ = ("Rates", "RateTier", "PriceTable")

_log = logging.getLogger(__name__)

RateTier = tuple[int, float, float, float | None, float | None]
"""``(threshold_input_tokens, input, output, cache_read, cache_write)``: applies when the call's
total input tokens are strictly above the threshold (genai-prices' cliff model)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Resolved prices of one model, in USD per million tokens.

    ``cache_read`` / ``cache_write`` are None when the model has no such price (those tokens are
    then billed at the input rate). ``tiers`` are sorted by threshold. ``per_request`` is a flat
    fee in USD per call (Perplexity), counted as input cost. ``provider_id`` / ``model_id`` say what
    the lookup resolved to.
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    tiers: tuple[RateTier, ...] = ()
    _: KW_ONLY
    source: CostSource
    provider_id: str = ""
    model_id: str = ""
    per_request: float = 0.0


# OpenTelemetry gen_ai.provider.name values and older/foreign spellings -> genai-prices ids.
# Checked before genai-prices' own matching, whose substring rules would send "azure.ai.openai"
# to OpenAI.
_PROVIDER_IDS: dict[str, str] = {
    name: target
    for target, names in (
        ("azure", "azure.ai.openai az.ai.openai azure.ai.inference az.ai.inference azure_openai"),
        ("aws", "aws.bedrock aws_bedrock bedrock"),
        ("google", "gcp.vertex_ai gcp.gemini gcp.gen_ai vertex_ai vertexai gemini"),
        ("mistral", "mistral_ai mistralai"),
        ("x-ai", "x_ai xai"),
        ("together", "together_ai"),
        ("fireworks", "fireworks_ai"),
    )
    for name in (target, *names.split())
} | {p: p for p in ("openai", "anthropic", "deepseek", "groq", "cohere", "perplexity")}
# Resellers of another provider's models under the same names, tried after the reseller itself
# (genai-prices' own azure entry falls back too; this keeps it so for any snapshot).
_FALLBACKS: dict[str, tuple[str, ...]] = {"azure": ("openai",)}
_MAX_PREFIXES = 3  # "a/b/c/model" at most: bounds the work an untrusted model name can cause
_CONDITIONAL_TTL_S = 60.0  # time-of-day / dated prices are re-resolved this often
_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")

_Entry = tuple[Rates | None, float | None]  # rates, expiry time (None: never)


class PriceTable:
    """Prices LLM calls: override models first, then genai-prices (when ``default_table``).

    ``models`` keys are ``(provider or None, model)``; a None provider matches any provider.
    ``aliases`` map a model name (deployment, proxy name) to the priced name, which may carry a
    ``provider/`` prefix. ``clock`` (Unix seconds) decides which time-dependent price applies.
    Thread-safe. ``rates``, ``price`` and ``cost`` never raise for arguments of the declared types
    (``price`` not even for malformed calls); unknown models are None / ``UNKNOWN_COST``.
    """

    def __init__(
        self,
        models: Mapping[tuple[str | None, str], Rates] | None = None,
        aliases: Mapping[str, str] | None = None,
        *,
        default_table: bool = True,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
        origin: str | None = None,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._default_table = default_table
        self._cache_size = cache_size
        self._clock = clock
        self._origin = origin
        self._overrides = {
            (self._provider_id(p) if p else None, _norm(m)): r
            for (p, m), r in (models or {}).items()
        }
        self._aliases = {_norm(k): _norm(v) for k, v in (aliases or {}).items()}
        self._override_providers = {p for p, _ in self._overrides if p}
        self._cache: OrderedDict[tuple[str | None, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._price_failed = False

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, default_table: bool = True) -> PriceTable:
        """Load an override file (format in the module docstring) on top of genai-prices.

        Raises ``ValueError("<path>: models[2].input: ...")`` on bad content, ``OSError`` when
        the file cannot be read.
        """
        parsed = read_price_file(path)
        models: dict[tuple[str | None, str], Rates] = {}
        for entry in parsed.models:
            key = (_norm(entry.provider) if entry.provider else None, _norm(entry.model))
            models[(entry.provider, entry.model)] = Rates(
                entry.input,
                entry.output,
                entry.cache_read,
                entry.cache_write,
                source="override",
                provider_id=key[0] or "",
                model_id=key[1],
            )
        return cls(models, parsed.aliases, default_table=default_table, origin=os.fspath(path))

    def rates(self, provider: str | None, model: str) -> Rates | None:
        """The rates of ``model`` as served by ``provider``, or None when no price is known."""
        key = (provider, model)
        entry = self._cache.get(key)
        if entry is not None and (entry[1] is None or self._clock() < entry[1]):
            try:  # noqa: SIM105 - contextlib.suppress costs ~0.3 µs on the hot path
                self._cache.move_to_end(key)
            except KeyError:  # evicted by another thread in between: the answer still holds
                pass
            return entry[0]
        try:
            entry = self._resolve(provider, model)
        except Exception:
            # A bug of ours or odd data in genai-prices: the model stays unpriced (and counted as
            # such), the span is not lost. Cached like any answer, so it is logged once per model.
            _log.warning(
                "otel-llm: cannot resolve price of %r / %r", provider, model, exc_info=True
            )
            entry = (None, None)
        with self._lock:
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry[0]

    def price(self, call: LLMCall) -> Cost:
        """Cost of ``call`` (response model, else request model); ``UNKNOWN_COST`` if unpriced.

        Never raises. The request model is tried too when the response model has no price
        (a proxy that answers with its own model name).
        """
        try:
            model = call.response_model or call.request_model  # LLMCall.model, minus a call
            rates = self.rates(call.provider, model) if model else None
            if rates is None and call.response_model and call.request_model:
                rates = self.rates(call.provider, call.request_model)
            if rates is None:
                return UNKNOWN_COST
            return _cost(
                rates,
                call.input_tokens,
                call.output_tokens,
                call.cache_read_tokens,
                call.cache_creation_tokens,
            )
        except Exception:
            if not self._price_failed:
                self._price_failed = True
                _log.warning("otel-llm: pricing a call failed; it is left unpriced", exc_info=True)
            return UNKNOWN_COST

    def cost(
        self,
        rates: Rates,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
    ) -> Cost:
        """Cost of the given usage at ``rates``; ``input_tokens`` includes the cached tokens.

        ``input_usd`` = uncached input + cache reads + cache writes (+ per-request fee),
        ``output_usd`` = output, ``total_usd`` = their sum. None / negative counts count as 0.
        """
        return _cost(rates, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens)

    @property
    def origin(self) -> str | None:
        """Path of the override file this table was loaded from, if any."""
        return self._origin

    # -- resolution (cache misses only) --------------------------------------------------------

    def _resolve(self, provider: str | None, model: str) -> _Entry:
        candidates = self._candidates(
            self._provider_id(provider) if provider else None, _norm(model)
        )
        for p, m in candidates:
            rates = self._overrides.get((p, m)) if p else None
            if rates is None:
                rates = self._overrides.get((None, m))
            if rates is not None:
                return rates, None
        if not self._default_table:
            return None, None
        snapshot = get_snapshot()
        for q, m in [(q, m) for p, m in candidates for q in (p, *_FALLBACKS.get(p or "", ()))]:
            try:
                found, info = snapshot.find_provider_model(m, None, q, None)
            except LookupError:  # not this candidate: try the next spelling
                continue
            now = self._clock()
            rates = _rates_from_genai(found.id, info, datetime.fromtimestamp(now, tz=timezone.utc))
            # Prices that depend on the date or time of day are valid "now" only.
            return rates, (now + _CONDITIONAL_TTL_S if isinstance(info.prices, list) else None)
        return None, None

    def _candidates(self, provider: str | None, name: str) -> list[tuple[str | None, str]]:
        """(provider id, model) pairs to try, best first; provider None = guess from the name."""
        pairs: list[tuple[str | None, str]] = []
        names: list[str] = []
        self._expand(provider, name, pairs, names, aliases=True)
        pairs.extend((None, n) for n in names)
        return list(dict.fromkeys(pairs))

    def _expand(
        self,
        provider: str | None,
        name: str,
        pairs: list[tuple[str | None, str]],
        names: list[str],
        *,
        aliases: bool,
    ) -> None:
        parts = name.split("/", _MAX_PREFIXES)
        providers = [provider] if provider else []
        for i in range(len(parts)):
            suffix = "/".join(parts[i:])
            target = self._aliases.get(suffix) if aliases else None
            if target is not None:  # one level only: alias chains cannot loop
                self._expand(
                    providers[0] if providers else None, target, pairs, names, aliases=False
                )
            names.append(suffix)
            pairs.extend((p, suffix) for p in providers)
            if i < len(parts) - 1:
                head = self._provider_id(parts[i])
                if head not in providers and self._known_provider(head):
                    providers.insert(0, head)  # the nearest prefix is the most specific

    def _provider_id(self, name: str) -> str:
        """genai-prices id for a provider name; the lower-cased name itself when unknown."""
        key = _norm(name)
        mapped = _PROVIDER_IDS.get(key)
        if mapped is not None:
            return mapped
        if self._default_table:
            found = find_provider_by_id(get_snapshot().providers, key)
            if found is not None:
                return found.id
        return key

    def _known_provider(self, provider_id: str) -> bool:
        if provider_id in self._override_providers or provider_id in _PROVIDER_IDS.values():
            return True
        return (
            self._default_table
            and find_provider_by_id(get_snapshot().providers, provider_id) is not None
        )


def _cost(
    rates: Rates,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None,
    cache_creation_tokens: int | None,
) -> Cost:
    """``PriceTable.cost`` with positional arguments: keyword passing costs ~0.3 µs a span."""
    # Written out rather than via helpers: this runs once per span on the hot path.
    cr = cache_read_tokens if cache_read_tokens and cache_read_tokens > 0 else 0
    cw = cache_creation_tokens if cache_creation_tokens and cache_creation_tokens > 0 else 0
    out = output_tokens if output_tokens and output_tokens > 0 else 0
    inp = input_tokens if input_tokens and input_tokens > 0 else 0
    if inp < cr + cw:
        # Cached tokens reported outside input_tokens (Anthropic's raw shape): they are input
        # all the same, and uncached input must not go negative.
        inp = cr + cw
    in_rate, out_rate = rates.input, rates.output
    cr_rate, cw_rate = rates.cache_read, rates.cache_write
    tiers = rates.tiers
    if tiers and inp > tiers[0][0]:
        for tier in reversed(tiers):
            if inp > tier[0]:
                _, in_rate, out_rate, cr_rate, cw_rate = tier
                break
    uncached = inp
    cached = 0.0
    if cr_rate is not None:
        uncached -= cr
        cached += cr * cr_rate
    if cw_rate is not None:
        uncached -= cw
        cached += cw * cw_rate
    input_usd = (uncached * in_rate + cached) / 1e6 + rates.per_request
    output_usd = out * out_rate / 1e6
    return Cost(input_usd + output_usd, input_usd, output_usd, rates.source)


def _rates_from_genai(provider_id: str, info: ModelInfo, when: datetime) -> Rates | None:
    """Flatten genai-prices' prices at ``when`` into float Rates; None if not priced per token."""
    prices = info.get_prices(when)
    values = [getattr(prices, key, None) for key in _PRICE_KEYS]
    if values[0] is None and values[1] is None:
        return None  # billed per character / second / image: a token count would price it at 0
    # Tiers may differ per price key in principle; the union of thresholds, with each key's rate
    # at each threshold, is the same cliff function as genai-prices' per-key lookup.
    thresholds = sorted({t.start for v in values if isinstance(v, TieredPrices) for t in v.tiers})
    fee = _at(getattr(prices, "requests_kcount", None), -1)  # USD per 1000 requests
    return Rates(
        *_row(values, -1),
        tuple((start, *_row(values, start)) for start in thresholds),
        source="price_table",
        provider_id=provider_id,
        model_id=info.id,
        per_request=fee / 1000 if fee else 0.0,
    )


def _row(values: list[Any], threshold: int) -> tuple[float, float, float | None, float | None]:
    """(input, output, cache_read, cache_write) just above ``threshold``; no price = free."""
    input, output, cache_read, cache_write = (_at(v, threshold) for v in values)
    return input or 0.0, output or 0.0, cache_read, cache_write


def _at(value: Any, threshold: int) -> float | None:
    """Rate of a genai-prices price for totals just above ``threshold`` (-1: the base rate)."""
    if value is None:
        return None
    if isinstance(value, TieredPrices):
        applicable: Decimal = value.base
        for tier in value.tiers:  # sorted ascending by genai-prices
            if tier.start <= threshold:
                applicable = tier.price
        return float(applicable)
    return float(value)


def _norm(name: str) -> str:
    return name.strip().lower()
