"""Instruments: the one place that creates them, and records one accounted call into them."""

from __future__ import annotations

from opentelemetry.metrics import Meter, MeterProvider, get_meter_provider
from opentelemetry.util.types import Attributes

from otel_llm import semconv as sc
from otel_llm.core.types import CallRecord, LLMCall
from otel_llm.version import __version__


class Instruments:
    """The §3 metrics plus our own health counters, created once per meter provider."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter: Meter = (meter_provider or get_meter_provider()).get_meter(
            "otel_llm", __version__
        )
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
        self.cost = meter.create_counter(
            sc.METRIC_COST, unit=sc.METRIC_COST_UNIT, description="Cost of GenAI calls in USD."
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
                self.cost.add(record.cost.total_usd, labels.owner)
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


class LabelCache:
    """Metric attribute dicts per (operation, provider, model, server, project).

    The same few combinations recur on every call: their dicts are built once. Bounded: cleared
    when a gateway sees too many distinct combinations.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._cache: dict[tuple[str | None, ...], _Labels] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, call: LLMCall) -> _Labels:
        key = (call.operation, call.provider, call.request_model, call.response_model,
               call.server_address, call.project)
        labels = self._cache.get(key)
        if labels is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            labels = self._cache[key] = _Labels.of(call)
        return labels


class _Labels:
    """Metric attributes for one (operation, provider, model, server, project)."""

    __slots__ = ("base", "input", "output", "owner", "prometheus")

    def __init__(self, base: dict[str, str], owner: dict[str, str]) -> None:
        self.base = base
        self.input = {**base, sc.GEN_AI_TOKEN_TYPE: "input"}
        self.output = {**base, sc.GEN_AI_TOKEN_TYPE: "output"}
        self.owner = owner
        # The same four as Prometheus label tuples (dots become underscores), for the
        # scrape-time recorder of the gateway.
        self.prometheus = tuple(
            tuple((key.replace(".", "_"), value) for key, value in attrs.items())
            for attrs in (self.base, self.input, self.output, self.owner)
        )

    @classmethod
    def of(cls, call: LLMCall) -> _Labels:
        base: dict[str, str] = {sc.GEN_AI_OPERATION_NAME: call.operation}
        if call.provider:
            base[sc.GEN_AI_PROVIDER_NAME] = call.provider
        if call.request_model:
            base[sc.GEN_AI_REQUEST_MODEL] = call.request_model
        if call.response_model:
            base[sc.GEN_AI_RESPONSE_MODEL] = call.response_model
        if call.server_address:
            base[sc.SERVER_ADDRESS] = call.server_address
        owner: dict[str, str] = {sc.GEN_AI_OPERATION_NAME: call.operation}
        if call.provider:
            owner[sc.GEN_AI_PROVIDER_NAME] = call.provider
        if call.model:
            owner[sc.GEN_AI_RESPONSE_MODEL] = call.model
        if call.project:
            owner[sc.OTEL_LLM_PROJECT_ID] = call.project
        return cls(base, owner)
