"""Alerts, rules and RAG feedback through the API; the feedback scores and their telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm.alerts import Evaluator, Rule
from otel_llm.core.exceptions import ValidationError
from otel_llm.feedback import (
    FeedbackRecorder,
    RetrievalIndex,
    install_recorder,
    record_feedback,
    score,
)
from otel_llm.server import create_app
from otel_llm.store import CallStore
from tests.store.call_factory import make_record

T0 = 1_741_996_800.0  # 2025-03-15T00:00:00Z
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
RETRIEVAL_SPAN = "00f067aa0ba902b7"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
                for m in sm.metrics if m.name == name for p in m.data.data_points]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}", flush_interval_s=0.05)
    store.start()
    yield store
    store.shutdown()


# --- alerts and rules -------------------------------------------------------------------------
def test_alerts_history_and_rules(store: CallStore) -> None:
    clock = Clock(T0)
    rule = Rule.model_validate({"name": "ErrorRate", "metric": "error_rate", "op": ">",
                                "threshold": "10%", "window": "5m", "severity": "critical"})
    evaluator = Evaluator([rule], clock=clock, jaeger_url="http://jaeger.test")
    app = create_app(store, alerts=evaluator, jaeger_url="http://jaeger.test", clock=clock)
    with TestClient(app) as client:
        assert client.get("/api/v1/alerts").json() == {"enabled": True, "alerts": []}
        for i in range(10):
            trace = f"{i + 1:032x}"
            evaluator.observe(make_record(int(T0 * 1000) - 1000, trace_id=trace,
                                          error_type="server_error" if i < 5 else None))
        evaluator.tick(T0)
        active = client.get("/api/v1/alerts").json()["alerts"]
        assert [(a["rule"], a["state"], a["severity"]) for a in active] == [
            ("ErrorRate", "firing", "critical")]
        assert active[0]["value"] == pytest.approx(0.5) and active[0]["value_text"] == "50%"
        assert active[0]["trace_links"] and all(
            link.startswith("http://jaeger.test/trace/") for link in active[0]["trace_links"])
        assert client.get("/api/v1/overview").json()["firing_alerts"] == 1
        clock.t = T0 + 3600
        evaluator.tick(clock.t)
        assert client.get("/api/v1/alerts").json()["alerts"] == []
        history = client.get("/api/v1/alerts/history").json()["alerts"]
        assert [(a["rule"], a["state"]) for a in history] == [("ErrorRate", "resolved")]
        assert history[0]["resolved_at"] == "2025-03-15T01:00:00.000Z"
        rules = client.get("/api/v1/rules").json()["rules"]
        assert [(r["name"], r["metric"], r["threshold"], r["window_text"]) for r in rules] == [
            ("ErrorRate", "error_rate", 0.1, "5m")]


def test_without_an_evaluator_alerts_are_empty_and_disabled(store: CallStore) -> None:
    with TestClient(create_app(store)) as client:
        assert client.get("/api/v1/alerts").json() == {"enabled": False, "alerts": []}
        assert client.get("/api/v1/alerts/history").json()["alerts"] == []
        assert client.get("/api/v1/rules").json() == {"rules": []}


# --- feedback ---------------------------------------------------------------------------------
def test_feedback_scores_against_the_stored_retrieval(store: CallStore,
                                                      telemetry: Telemetry) -> None:
    docs = ("d1", "d2", "d3", "d4", "d5")
    store.observe(make_record(int(T0 * 1000), operation="retrieval", provider=None, model=None,
                              cost_usd=None, trace_id=TRACE, span_id=RETRIEVAL_SPAN,
                              documents=docs, data_source="kb", project="search"))
    assert store.flush(10)
    recorder = FeedbackRecorder([store], tracer_provider=telemetry.tracer_provider,
                                meter_provider=telemetry.meter_provider)
    with TestClient(create_app(store, feedback=recorder)) as client:
        response = client.post("/api/v1/feedback", json={
            "trace_id": TRACE.upper(), "relevant_ids": ["d2", "d9"], "clicked_positions": [4],
            "rating": 4, "k": 3,
        })
    assert response.status_code == 200, response.text
    # R = {d2, d9, d4}; top-3 = d1 d2 d3 -> 1 hit: precision 1/3, recall 1/3.
    assert response.json() == {
        "trace_id": TRACE, "span_id": RETRIEVAL_SPAN, "k": 3,
        "precision_at_k": pytest.approx(1 / 3), "recall": pytest.approx(1 / 3),
        "satisfaction": 0.8, "retrieved": 5, "relevant": 3,
    }
    span = telemetry.exporter.get_finished_spans()[-1]
    assert span.name == "evaluation rag_feedback"
    assert span.context is not None and f"{span.context.trace_id:032x}" == TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == RETRIEVAL_SPAN
    events = {e.attributes["gen_ai.evaluation.name"]: e.attributes["gen_ai.evaluation.score.value"]
              for e in span.events if e.name == "gen_ai.evaluation.result" and e.attributes}
    assert events == {"precision_at_k": pytest.approx(1 / 3), "recall": pytest.approx(1 / 3),
                      "satisfaction": 0.8}
    for name, value in (("otel_llm.rag.precision", 1 / 3), ("otel_llm.rag.recall", 1 / 3),
                        ("otel_llm.rag.satisfaction", 0.8)):
        [point] = telemetry.points(name)
        assert point.count == 1 and point.sum == pytest.approx(value)
        assert dict(point.attributes) == {"gen_ai.data_source.id": "kb",
                                          "otel_llm.project.id": "search"}


def test_record_feedback_in_process_with_the_retrieval_index(telemetry: Telemetry) -> None:
    index = RetrievalIndex(max_traces=2)
    index.observe(make_record(1000, operation="retrieval", trace_id=TRACE,
                              span_id=RETRIEVAL_SPAN, documents=("a", "b", "c", "d")))
    recorder = FeedbackRecorder([index], tracer_provider=telemetry.tracer_provider,
                                meter_provider=telemetry.meter_provider)
    install_recorder(recorder)
    try:
        result = record_feedback(TRACE, clicked_positions=[1, 2])
    finally:
        install_recorder(None)
    assert (result.k, result.precision_at_k, result.recall, result.satisfaction) == (
        4, 0.5, 1.0, None)
    assert [p.sum for p in telemetry.points("otel_llm.rag.satisfaction")] == []
    for other in ("1" * 32, "2" * 32):  # the index forgets the oldest trace beyond its bound
        index.remember(other, None, ["x"])
    assert index.retrieved(TRACE) is None and index.retrieved("2" * 32) is not None


def test_feedback_on_an_unknown_retrieval_scores_satisfaction_only(
    telemetry: Telemetry,
) -> None:
    recorder = FeedbackRecorder(tracer_provider=telemetry.tracer_provider,
                                meter_provider=telemetry.meter_provider)
    result = recorder.record(TRACE, relevant_ids=["a"], rating=1, scale=1)
    assert (result.precision_at_k, result.recall, result.satisfaction) == (None, None, 1.0)
    span = telemetry.exporter.get_finished_spans()[-1]
    # No span id: no valid parent; the span names the judged trace instead.
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["otel_llm.feedback.trace_id"] == TRACE


@pytest.mark.parametrize("bad", [
    {"trace_id": "0" * 32, "rating": 1},
    {"trace_id": "xyz", "rating": 1},
    {"trace_id": TRACE, "rating": -1},
    {"trace_id": TRACE, "rating": float("nan")},
    {"trace_id": TRACE, "relevant_ids": ["a"], "k": 0, "retrieved_ids": ["a"]},
    {"trace_id": TRACE},
])
def test_invalid_feedback_raises_a_validation_error(bad: dict[str, Any]) -> None:
    recorder = FeedbackRecorder()
    trace_id = bad.pop("trace_id")
    with pytest.raises(ValidationError):
        recorder.record(trace_id, **bad)


def test_score_examples() -> None:
    assert score(["a", "b", "c", "d"], ["b", "z"], (), k=2) == (2, 0.5, 0.5, 2)
    assert score(["a", "a", "b"], ["b"]) == (2, 0.5, 1.0, 1)  # a duplicate is one document
    assert score(["a", "b"], ["a"], (), k=5) == (5, 0.2, 1.0, 1)  # k beyond the list
    assert score(None, ["a"]) == (None, None, None, 1)


@given(
    retrieved=st.lists(st.sampled_from("abcdefgh"), max_size=8),
    relevant=st.lists(st.sampled_from("abcdefghij"), max_size=10),
    k=st.none() | st.integers(1, 12),
    data=st.data(),
)
def test_scores_are_fractions_between_0_and_1(retrieved: list[str], relevant: list[str],
                                              k: int | None, data: st.DataObject) -> None:
    unique = list(dict.fromkeys(retrieved))
    clicks = data.draw(st.lists(st.integers(1, len(unique)), max_size=4) if unique
                       else st.just([]))
    got_k, precision, recall, size = score(retrieved, relevant, clicks, k)
    for value in (precision, recall):
        assert value is None or 0.0 <= value <= 1.0
    assert size == len(set(relevant) | {unique[p - 1] for p in clicks})
    if size and unique:
        assert recall is not None
    if got_k and precision is not None and recall is not None and size:
        assert precision * got_k == pytest.approx(recall * size)  # both count the same hits
