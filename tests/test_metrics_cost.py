"""The ``otel_llm.cost`` counter: exported exactly as a synchronous counter would be, whichever
``Instruments`` added to it, on explicit providers and on the global (proxy) one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.metrics import _internal as metrics_globals
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.util._once import Once

from otel_llm import semconv as sc
from otel_llm.core.types import CallRecord, Cost, LLMCall
from otel_llm.metrics import Instruments

DELTA = {kind: AggregationTemporality.DELTA for kind in (
    Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter,
    ObservableGauge)}


def call(usd: float, model: str = "gpt-4o", project: str | None = None) -> CallRecord:
    return CallRecord(LLMCall("chat", "openai", model, model, 10, 5, duration_s=0.1,
                              project=project),
                      Cost(usd, None, None, "price_table"), None, 1.0)


def cost_metric(reader: InMemoryMetricReader) -> Any:
    data = reader.get_metrics_data()
    assert data is not None
    found = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
             if m.name == sc.METRIC_COST]
    assert len(found) == 1
    return found[0]


def points(reader: InMemoryMetricReader) -> dict[frozenset[tuple[str, Any]], float]:
    return {frozenset(p.attributes.items()): p.value
            for p in cost_metric(reader).data.data_points}


def test_exported_like_a_synchronous_counter() -> None:
    ours_reader, sync_reader = InMemoryMetricReader(), InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[ours_reader]))
    sync = MeterProvider(metric_readers=[sync_reader]).get_meter("otel_llm").create_counter(
        sc.METRIC_COST, unit=sc.METRIC_COST_UNIT, description="Cost of GenAI calls in USD.")
    records = [call(0.1), call(0.2, project="p1"), call(0.3), call(0.7, model="gpt-4o-mini")]
    for record in records:
        instruments.record(record)
        labels = instruments._labels.get(record.call)
        assert record.cost is not None and record.cost.total_usd is not None
        sync.add(record.cost.total_usd, labels.owner)
    ours, expected = cost_metric(ours_reader), cost_metric(sync_reader)
    assert (ours.name, ours.unit, ours.description) == (
        expected.name, expected.unit, expected.description)
    assert ours.unit == "usd"
    assert ours.data.is_monotonic and expected.data.is_monotonic
    assert ours.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    assert points(ours_reader) == points(sync_reader)
    assert len(points(ours_reader)) == 3


def test_two_instruments_on_one_provider_both_count() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    first, second = Instruments(provider), Instruments(provider)
    first.record(call(0.25))
    second.record(call(0.5))
    second.record(call(1.0, project="p1"))
    got = points(reader)
    assert sorted(got.values()) == [pytest.approx(0.75), pytest.approx(1.0)]
    # A second collection reports the running totals again, unchanged.
    assert points(reader) == got


def test_providers_keep_their_own_totals() -> None:
    readers = InMemoryMetricReader(), InMemoryMetricReader()
    a, b = (Instruments(MeterProvider(metric_readers=[r])) for r in readers)
    a.record(call(0.25))
    b.record(call(2.0))
    assert list(points(readers[0]).values()) == [pytest.approx(0.25)]
    assert list(points(readers[1]).values()) == [pytest.approx(2.0)]


def test_delta_reader_sees_increments() -> None:
    reader = InMemoryMetricReader(preferred_temporality=DELTA)
    instruments = Instruments(MeterProvider(metric_readers=[reader]))
    instruments.record(call(0.25))
    instruments.record(call(0.5))
    metric = cost_metric(reader)
    assert metric.data.aggregation_temporality == AggregationTemporality.DELTA
    assert [p.value for p in metric.data.data_points] == [pytest.approx(0.75)]
    instruments.record(call(2.0))
    assert list(points(reader).values()) == [pytest.approx(2.0)]


@pytest.fixture
def fresh_global_meter_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's globals as in a new process: no provider set, a fresh proxy."""
    monkeypatch.setattr(metrics_globals, "_METER_PROVIDER", None)
    monkeypatch.setattr(metrics_globals, "_METER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(metrics_globals, "_PROXY_METER_PROVIDER",
                        metrics_globals._ProxyMeterProvider())
    monkeypatch.delenv("OTEL_PYTHON_METER_PROVIDER", raising=False)
    yield


@pytest.mark.usefixtures("fresh_global_meter_provider")
def test_instruments_built_before_the_global_provider_report_once_it_is_set() -> None:
    early = Instruments()  # on the API's proxy: nothing is recorded yet
    early.record(call(100.0))  # like a synchronous counter's add on the proxy: dropped
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    early.record(call(0.25))
    Instruments(provider).record(call(0.5))
    Instruments().record(call(1.0))
    assert list(points(reader).values()) == [pytest.approx(1.75)]
    provider.shutdown()
