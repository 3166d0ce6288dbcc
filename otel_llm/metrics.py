"""Instruments: the one place that creates them, and records one accounted call into them."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable

from opentelemetry.metrics import (
    CallbackOptions,
    Meter,
    MeterProvider,
    Observation,
    get_meter_provider,
)
from opentelemetry.util.types import Attributes

from otel_llm import semconv as sc
from otel_llm.core.types import CallRecord, LLMCall
from otel_llm.version import __version__


class Instruments:
    """The §3 metrics plus our own health counters, created once per meter provider."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        provider = meter_provider or get_meter_provider()
        meter: Meter = provider.get_meter("otel_llm", __version__)
        # The global provider may still be the API's proxy: its instruments start recording
        # once a real provider is set, so the cost totals follow whatever it is at each call.
        self._global = meter_provider is None or meter_provider is get_meter_provider()
        self._cost_provider = provider
        self._cost_totals = _cost_totals(provider)
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        # Asynchronous: a call adds to a running total (a float add under a lock) instead of
        # paying for an SDK measurement; the SDK reads the totals when it collects.
        self.cost = meter.create_observable_counter(
            sc.METRIC_COST,
            callbacks=[self._observe_cost],
            unit=sc.METRIC_COST_UNIT,
            description="Cost of GenAI calls in USD.",
        )
        self.errors = meter.create_counter(
            sc.METRIC_ERRORS, unit="{error}", description="Failed GenAI calls by category."
        )
        self.retrieval_documents = meter.create_histogram(
            sc.METRIC_RETRIEVAL_DOCUMENTS,
            unit="{document}",
            description="Documents returned by a retrieval.",
            explicit_bucket_boundaries_advisory=list(sc.DOCUMENT_BUCKETS),
        )
        self.unpriced_calls = meter.create_counter(
            sc.METRIC_UNPRICED_CALLS,
            unit="{call}",
            description="Calls whose model has no known price (cost not recorded).",
        )
        self.invalid_input = meter.create_counter(
            sc.METRIC_INVALID_INPUT,
            unit="{value}",
            description="Values passed to otel-llm that were invalid and ignored.",
        )
        self.internal_errors = meter.create_counter(
            sc.METRIC_INTERNAL_ERRORS,
            unit="{error}",
            description="Failures inside otel-llm itself (the user's call was not affected).",
        )
        self._labels = LabelCache()

    def record(self, record: CallRecord) -> None:
        """Record one accounted call. Called exactly once per call."""
        call = record.call
        labels = self._labels.get(call)
        if call.duration_s is not None:
            attrs: Attributes = labels.base
            if record.error is not None:
                attrs = {**labels.base, sc.ERROR_TYPE: record.error.type}
            self.duration.record(call.duration_s, attrs)
        if call.time_to_first_chunk_s is not None:
            self.time_to_first_chunk.record(call.time_to_first_chunk_s, labels.base)
        if call.input_tokens is not None:
            self.token_usage.record(call.input_tokens, labels.input)
        if call.output_tokens is not None:
            self.token_usage.record(call.output_tokens, labels.output)
        if call.retrieval_documents is not None:
            self.retrieval_documents.record(call.retrieval_documents, labels.base)
        if record.cost is not None:
            if record.cost.total_usd is not None:
                self.add_cost(record.cost.total_usd, labels)
            else:
                self.unpriced_calls.add(1, labels.owner)
        if record.error is not None:
            self.errors.add(
                1,
                {
                    **labels.owner,
                    sc.OTEL_LLM_ERROR_CATEGORY: record.error.category,
                    sc.OTEL_LLM_ERROR_SEVERITY: record.error.severity,
                    sc.ERROR_TYPE: record.error.type,
                },
            )

    def add_cost(self, usd: float, labels: _Labels) -> None:
        """Add ``usd`` to the ``otel_llm.cost`` counter of ``labels.owner``."""
        totals = self._cost_totals
        if self._global:
            provider = get_meter_provider()
            if provider is not self._cost_provider:
                # Totals first: a concurrent call that already sees the new provider must not
                # add to the old totals.
                self._cost_totals = totals = _cost_totals(provider)
                self._cost_provider = provider
        totals.add(labels.owner_key, labels.owner, usd)

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        provider = get_meter_provider() if self._global else self._cost_provider
        return _cost_totals(provider).observations()


class _CostTotals:
    """Running ``otel_llm.cost`` per label set, shared by every :class:`Instruments` of one
    meter provider.

    Shared because the SDK de-duplicates instruments by name per meter: a second
    ``Instruments`` on the same provider gets the first one's observable counter, and only the
    first callback is ever called, so it must report what every ``Instruments`` added. Bounded
    like the SDK's own aggregation: label sets beyond ``limit`` are folded into the SDK's
    overflow set.
    """

    __slots__ = ("_limit", "_lock", "_totals")

    def __init__(self, limit: int = 2000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._totals: dict[tuple[tuple[str, str], ...], _Total] = {}

    def add(self, key: tuple[tuple[str, str], ...], attributes: Attributes, usd: float) -> None:
        with self._lock:
            entry = self._totals.get(key)
            if entry is None:
                if len(self._totals) >= self._limit:
                    key, attributes = _OVERFLOW_KEY, _OVERFLOW_ATTRIBUTES
                    entry = self._totals.get(key)
                if entry is None:
                    entry = self._totals[key] = _Total(attributes)
            entry.usd += usd

    def observations(self) -> list[Observation]:
        with self._lock:
            return [Observation(t.usd, t.attributes) for t in self._totals.values()]


class _Total:
    __slots__ = ("attributes", "usd")

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self.usd = 0.0


_OVERFLOW_ATTRIBUTES: Attributes = {"otel.metric.overflow": True}
_OVERFLOW_KEY = (("otel.metric.overflow", "true"),)
_cost_registry: weakref.WeakKeyDictionary[MeterProvider, _CostTotals] = (
    weakref.WeakKeyDictionary()
)
_cost_registry_lock = threading.Lock()


def _cost_totals(provider: MeterProvider) -> _CostTotals:
    with _cost_registry_lock:
        totals = _cost_registry.get(provider)
        if totals is None:
            totals = _cost_registry[provider] = _CostTotals()
        return totals


class LabelCache:
    """Metric attribute dicts per (operation, provider, model, server, project).

    The same few combinations recur on every call: their dicts are built once. Bounded: cleared
    when a gateway sees too many distinct combinations.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._cache: dict[tuple[str | int | None, ...], _Labels] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, call: LLMCall) -> _Labels:
        key = (call.operation, call.provider, call.request_model, call.response_model,
               call.server_address, call.server_port, call.project)
        labels = self._cache.get(key)
        if labels is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            labels = self._cache[key] = _Labels.of(call)
        return labels


class _Labels:
    """Metric attributes for one (operation, provider, model, server, project)."""

    __slots__ = ("base", "input", "output", "owner", "owner_key", "prometheus")

    def __init__(self, base: dict[str, str | int], owner: dict[str, str]) -> None:
        self.base = base
        self.input = {**base, sc.GEN_AI_TOKEN_TYPE: "input"}
        self.output = {**base, sc.GEN_AI_TOKEN_TYPE: "output"}
        self.owner = owner
        self.owner_key = tuple(owner.items())
        # The same four as Prometheus label tuples (dots become underscores), for the
        # scrape-time recorder of the gateway.
        self.prometheus = tuple(
            tuple((key.replace(".", "_"), str(value)) for key, value in attrs.items())
            for attrs in (self.base, self.input, self.output, self.owner)
        )

    @classmethod
    def of(cls, call: LLMCall) -> _Labels:
        base: dict[str, str | int] = {sc.GEN_AI_OPERATION_NAME: call.operation}
        if call.provider:
            base[sc.GEN_AI_PROVIDER_NAME] = call.provider
        if call.request_model:
            base[sc.GEN_AI_REQUEST_MODEL] = call.request_model
        if call.response_model:
            base[sc.GEN_AI_RESPONSE_MODEL] = call.response_model
        if call.server_address:
            base[sc.SERVER_ADDRESS] = call.server_address
            if call.server_port:  # semconv: conditionally required when the address is set
                base[sc.SERVER_PORT] = call.server_port
        owner: dict[str, str] = {sc.GEN_AI_OPERATION_NAME: call.operation}
        if call.provider:
            owner[sc.GEN_AI_PROVIDER_NAME] = call.provider
        if call.model:
            owner[sc.GEN_AI_RESPONSE_MODEL] = call.model
        if call.project:
            owner[sc.OTEL_LLM_PROJECT_ID] = call.project
        return cls(base, owner)
