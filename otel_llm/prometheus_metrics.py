"""The §3 call metrics aggregated in plain dicts and rendered at scrape time for Prometheus.

The gateway accounts every GenAI span it forwards; the OpenTelemetry SDK's per-measurement path
(about 15-20 µs a measurement, five a call) would cap it at a few thousand spans a second. This
recorder keeps the same series — same Prometheus names, labels and bucket boundaries as the
SDK's Prometheus exporter produces from :class:`~otel_llm.metrics.Instruments` — in a dict keyed
by label tuple, and builds the metric families in a custom ``collect()`` (as
prometheus/client_python recommends for derived values), so recording a call costs a few µs.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from otel_llm import semconv as sc
from otel_llm.core.types import CallRecord
from otel_llm.metrics import LabelCache

_Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("bounds", "series")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        # labels -> [count per bucket (len(bounds) + 1), sum]
        self.series: dict[_Labels, list[float]] = {}

    def observe(self, labels: _Labels, value: float) -> None:
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        names = _label_names(self.series)
        family = HistogramMetricFamily(name, documentation, labels=names)
        for labels, row in self.series.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip([*self.bounds, float("inf")], row[:-1], strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            family.add_metric(_values(labels, names), buckets, row[-1])
        return family


class PrometheusCallMetrics:
    """Records accounted calls; registers itself as a collector on ``registry``.

    ``record`` is called on the thread that accounted the call: a lock and a few dict updates.
    Series are bounded by the label cache's key space (operation, provider, model, …).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._labels = LabelCache()
        self._duration = _Histogram(sc.DURATION_BUCKETS)
        self._ttfc = _Histogram(sc.DURATION_BUCKETS)
        self._tokens = _Histogram(sc.TOKEN_BUCKETS)
        self._documents = _Histogram(sc.DOCUMENT_BUCKETS)
        self._cost: dict[_Labels, float] = {}
        self._unpriced: dict[_Labels, float] = {}
        self._errors: dict[_Labels, float] = {}
        registry.register(self)

    def record(self, record: CallRecord) -> None:
        call = record.call
        base, input_labels, output_labels, owner = self._labels.get(call).prometheus
        error = record.error
        cost = record.cost
        with self._lock:
            if call.duration_s is not None:
                duration_labels = base
                if error is not None:
                    duration_labels = (*base, ("error_type", error.type))
                self._duration.observe(duration_labels, call.duration_s)
            if call.time_to_first_chunk_s is not None:
                self._ttfc.observe(base, call.time_to_first_chunk_s)
            if call.input_tokens is not None:
                self._tokens.observe(input_labels, call.input_tokens)
            if call.output_tokens is not None:
                self._tokens.observe(output_labels, call.output_tokens)
            if call.retrieval_documents is not None:
                self._documents.observe(base, call.retrieval_documents)
            if cost is not None:
                if cost.total_usd is not None:
                    self._cost[owner] = self._cost.get(owner, 0.0) + cost.total_usd
                else:
                    self._unpriced[owner] = self._unpriced.get(owner, 0.0) + 1
            if error is not None:
                key = (*owner, ("otel_llm_error_category", error.category),
                       ("otel_llm_error_severity", error.severity), ("error_type", error.type))
                self._errors[key] = self._errors.get(key, 0.0) + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield self._duration.family(
                "gen_ai_client_operation_duration_seconds", "GenAI operation duration.")
            yield self._tokens.family(
                "gen_ai_client_token_usage", "Number of input and output tokens used.")
            yield self._ttfc.family(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Time to receive the first chunk of a streamed response.")
            yield self._documents.family(
                "otel_llm_retrieval_documents", "Documents returned by a retrieval.")
            yield _counter("otel_llm_cost_usd", "Cost of GenAI calls in USD.", self._cost)
            yield _counter("otel_llm_cost_unpriced_calls",
                           "Calls whose model has no known price.", self._unpriced)
            yield _counter("otel_llm_errors", "Failed GenAI calls by category.", self._errors)


def _label_names(series: Mapping[_Labels, object]) -> list[str]:
    names: dict[str, None] = {}
    for labels in series:
        for name, _ in labels:
            names[name] = None
    return list(names)


def _values(labels: _Labels, names: Sequence[str]) -> list[str]:
    given = dict(labels)
    return [given.get(name, "") for name in names]


def _counter(name: str, documentation: str, series: Mapping[_Labels, float]) -> Metric:
    names = _label_names(series)
    family = CounterMetricFamily(name, documentation, labels=names)
    for labels, value in series.items():
        family.add_metric(_values(labels, names), value)
    return family


def _bound(bound: float) -> str:
    # As the SDK's exporter writes them: integer bounds without ".0" (token buckets).
    return "+Inf" if bound == float("inf") else str(bound)
