"""RAG quality from user feedback: precision@k, recall and satisfaction per trace.

A user's feedback on an answer (documents marked relevant, result positions clicked, a rating)
is scored against the documents the trace's retrieval returned, then emitted as

* metrics ``otel_llm.rag.precision``, ``otel_llm.rag.recall``, ``otel_llm.rag.satisfaction``
  (histograms of values in [0, 1], by data source and project), and
* a span ``evaluation rag_feedback`` in the same trace, a child of the retrieval span, with one
  ``gen_ai.evaluation.result`` event per score carrying ``gen_ai.evaluation.name`` and
  ``gen_ai.evaluation.score.value`` (the GenAI semantic conventions' evaluation attributes).

Scores (``R`` = ``relevant_ids`` plus the documents at the clicked positions; ``top`` = the first
``k`` retrieved documents, ``k`` defaulting to how many were retrieved):
``precision@k = |top ∩ R| / k``, ``recall = |top ∩ R| / |R|``, ``satisfaction = rating / scale``.
Precision and recall are None when the trace's retrieved documents are unknown.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, get_meter_provider
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TracerProvider,
)

from otel_llm import semconv as sc
from otel_llm.core.exceptions import ValidationError
from otel_llm.core.types import CallRecord
from otel_llm.version import __version__

__all__ = [
    "DocumentSource",
    "FeedbackRecorder",
    "FeedbackResult",
    "RetrievalIndex",
    "Retrieved",
    "install_recorder",
    "record_feedback",
    "score",
]

# Names (candidates for otel_llm.semconv).
METRIC_RAG_PRECISION: Final = "otel_llm.rag.precision"
METRIC_RAG_RECALL: Final = "otel_llm.rag.recall"
METRIC_RAG_SATISFACTION: Final = "otel_llm.rag.satisfaction"
GEN_AI_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
OTEL_LLM_RAG_K: Final = "otel_llm.rag.k"
OTEL_LLM_FEEDBACK_TRACE_ID: Final = "otel_llm.feedback.trace_id"
SPAN_NAME: Final = "evaluation rag_feedback"
MAX_IDS: Final = 1000
_SCORE_BUCKETS: Final = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Retrieved:
    """The documents one retrieval span returned, in rank order."""

    trace_id: str
    span_id: str | None
    document_ids: tuple[str, ...]
    data_source: str | None = None
    project: str | None = None


class DocumentSource(Protocol):
    """Where the retrieved documents of a trace are found (the call store, an in-memory index).

    ``retrieved`` returns the latest retrieval of the trace (or of span ``span_id``) or None.
    """

    def retrieved(self, trace_id: str, span_id: str | None = None) -> Retrieved | None: ...


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """The scores of one feedback, as emitted (None: not computable from what was given)."""

    trace_id: str
    span_id: str | None
    k: int | None
    precision_at_k: float | None
    recall: float | None
    satisfaction: float | None
    retrieved: int | None
    """How many documents the retrieval returned (None: unknown)."""
    relevant: int
    """Size of the relevant set: relevant ids plus clicked documents."""


class RetrievalIndex:
    """A bounded in-memory :class:`DocumentSource`: the last ``max_traces`` traces' retrievals.

    As a :class:`~otel_llm.accounting.CallObserver` it remembers retrieval calls that carry
    document ids (``LLMCall.document_ids``); :meth:`remember` adds one directly.
    """

    def __init__(self, max_traces: int = 10_000) -> None:
        if max_traces < 1:
            raise ValueError("max_traces must be at least 1")
        self._max = max_traces
        self._items: OrderedDict[str, list[Retrieved]] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, record: CallRecord) -> None:
        ids = record.call.document_ids
        if record.trace_id and ids and record.call.operation == sc.OP_RETRIEVAL:
            self.remember(record.trace_id, record.span_id, ids, record.call.data_source,
                          record.call.project)

    def remember(self, trace_id: str, span_id: str | None, document_ids: Iterable[object],
                 data_source: str | None = None, project: str | None = None) -> None:
        entry = Retrieved(trace_id, span_id, tuple(str(i) for i in document_ids)[:MAX_IDS],
                          data_source, project)
        with self._lock:
            found = self._items.pop(trace_id, [])
            self._items[trace_id] = [*found, entry][-8:]  # a trace retrieves a few times at most
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def retrieved(self, trace_id: str, span_id: str | None = None) -> Retrieved | None:
        with self._lock:
            entries = self._items.get(trace_id, [])
            for entry in reversed(entries):
                if span_id is None or entry.span_id == span_id:
                    return entry
        return None


def score(
    retrieved_ids: Sequence[str] | None,
    relevant_ids: Iterable[str] = (),
    clicked_positions: Iterable[int] = (),
    k: int | None = None,
) -> tuple[int | None, float | None, float | None, int]:
    """``(k, precision@k, recall, |R|)`` — pure. Clicked positions are 1-based ranks.

    Raises :class:`~otel_llm.ValidationError` for a position outside the retrieved list.
    """
    relevant = {str(i) for i in relevant_ids}
    positions = list(clicked_positions)
    if retrieved_ids is None:
        if positions:
            raise ValidationError(
                "clicked_positions need the retrieved documents, which are unknown for this "
                "trace", code="RETRIEVAL_UNKNOWN", http_status=422)
        return k, None, None, len(relevant)
    docs = list(dict.fromkeys(retrieved_ids))  # a duplicate id is one document
    for p in positions:
        if not 1 <= p <= len(docs):
            raise ValidationError(
                f"clicked position {p} is outside the {len(docs)} retrieved document(s)",
                details={"position": p, "retrieved": len(docs)}, http_status=422)
        relevant.add(docs[p - 1])
    k = len(docs) if k is None else k
    hits = len(relevant.intersection(docs[:k]))
    precision = hits / k if k > 0 else None
    recall = hits / len(relevant) if relevant else None
    return k, precision, recall, len(relevant)


class FeedbackRecorder:
    """Scores feedback and emits it. Thread-safe; providers default to the global ones.

    ``documents`` are asked in order for the trace's retrieval; ``retrieved_ids`` passed to
    :meth:`record` win over them. Errors of a document source (a store outage) propagate.
    """

    def __init__(
        self,
        documents: Sequence[DocumentSource] = (),
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._documents = list(documents)
        self._tracer = trace.get_tracer("otel_llm.feedback", __version__, tracer_provider)
        meter = (meter_provider or get_meter_provider()).get_meter("otel_llm", __version__)
        self._histograms = {
            name: meter.create_histogram(
                metric, unit="1", description=description,
                explicit_bucket_boundaries_advisory=list(_SCORE_BUCKETS),
            )
            for name, metric, description in (
                ("precision_at_k", METRIC_RAG_PRECISION, "RAG precision@k from user feedback."),
                ("recall", METRIC_RAG_RECALL, "RAG recall from user feedback."),
                ("satisfaction", METRIC_RAG_SATISFACTION,
                 "User satisfaction with RAG answers (rating / scale)."),
            )
        }

    def record(
        self,
        trace_id: str,
        *,
        relevant_ids: Iterable[str] = (),
        clicked_positions: Iterable[int] = (),
        rating: float | None = None,
        scale: float = 5.0,
        k: int | None = None,
        span_id: str | None = None,
        retrieved_ids: Sequence[str] | None = None,
    ) -> FeedbackResult:
        """Score one feedback on ``trace_id`` and emit it; see the module doc for the formulas.

        Raises :class:`~otel_llm.ValidationError` for a malformed id, a rating outside
        ``[0, scale]``, ``k < 1``, too many ids, or feedback that carries nothing to score.
        """
        trace_id = _hex_id(trace_id, 32, "trace_id")
        span_id = _hex_id(span_id, 16, "span_id") if span_id is not None else None
        relevant = [str(i) for i in relevant_ids]
        positions = [int(p) for p in clicked_positions]
        if len(relevant) > MAX_IDS or len(positions) > MAX_IDS:
            raise ValidationError(f"at most {MAX_IDS} relevant ids and clicked positions",
                                  http_status=422)
        if not relevant and not positions and rating is None:
            raise ValidationError("feedback needs relevant_ids, clicked_positions or a rating",
                                  http_status=422)
        if k is not None and k < 1:
            raise ValidationError("k must be at least 1", http_status=422)
        satisfaction = None
        if rating is not None:
            if not (math.isfinite(scale) and scale > 0 and 0 <= rating <= scale):
                raise ValidationError(f"rating must be between 0 and scale ({scale})",
                                      http_status=422)
            satisfaction = rating / scale
        found = self._lookup(trace_id, span_id)
        ids = list(retrieved_ids)[:MAX_IDS] if retrieved_ids is not None else None
        if ids is None and found is not None:
            ids = list(found.document_ids)
        if relevant or positions:
            k, precision, recall, size = score(ids, relevant, positions, k)
        else:
            precision = recall = None
            size = 0
        result = FeedbackResult(
            trace_id=trace_id,
            span_id=span_id or (found.span_id if found is not None else None),
            k=k if ids is not None else None,
            precision_at_k=precision,
            recall=recall,
            satisfaction=satisfaction,
            retrieved=len(dict.fromkeys(ids)) if ids is not None else None,
            relevant=size,
        )
        self._emit(result, found)
        return result

    def _lookup(self, trace_id: str, span_id: str | None) -> Retrieved | None:
        for source in self._documents:
            found = source.retrieved(trace_id, span_id)
            if found is not None:
                return found
        return None

    def _emit(self, result: FeedbackResult, found: Retrieved | None) -> None:
        labels: dict[str, str] = {}
        if found is not None and found.data_source:
            labels[sc.GEN_AI_DATA_SOURCE_ID] = found.data_source
        if found is not None and found.project:
            labels[sc.OTEL_LLM_PROJECT_ID] = found.project
        scores = {
            "precision_at_k": result.precision_at_k,
            "recall": result.recall,
            "satisfaction": result.satisfaction,
        }
        for name, value in scores.items():
            if value is not None:
                self._histograms[name].record(value, labels)
        attributes: dict[str, str | int] = {**labels, OTEL_LLM_FEEDBACK_TRACE_ID: result.trace_id}
        if result.k is not None:
            attributes[OTEL_LLM_RAG_K] = result.k
        with self._tracer.start_as_current_span(
            SPAN_NAME, context=_parent(result), kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            for name, value in scores.items():
                if value is not None:
                    span.add_event(GEN_AI_EVALUATION_RESULT, {
                        GEN_AI_EVALUATION_NAME: name, GEN_AI_EVALUATION_SCORE_VALUE: value,
                    })


def _parent(result: FeedbackResult) -> Context | None:
    # A child of the retrieval span puts the evaluation in the trace it judges. Without a span
    # id there is no valid parent: the span starts its own trace and names the judged one in
    # otel_llm.feedback.trace_id.
    if result.span_id is None:
        return None
    parent = SpanContext(int(result.trace_id, 16), int(result.span_id, 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _hex_id(value: str, length: int, name: str) -> str:
    text = str(value).strip().lower()
    if len(text) != length or any(c not in "0123456789abcdef" for c in text) or not int(text, 16):
        raise ValidationError(f"{name} must be {length} hex digits, not all zero",
                              details={"field": name}, http_status=422)
    return text


_lock = threading.Lock()
_installed: FeedbackRecorder | None = None


def install_recorder(recorder: FeedbackRecorder | None) -> None:
    """Make ``recorder`` the one :func:`record_feedback` uses (``configure()`` installs one)."""
    global _installed
    with _lock:
        _installed = recorder


def record_feedback(
    trace_id: str,
    *,
    relevant_ids: Iterable[str] = (),
    clicked_positions: Iterable[int] = (),
    rating: float | None = None,
    scale: float = 5.0,
    k: int | None = None,
    span_id: str | None = None,
    retrieved_ids: Sequence[str] | None = None,
    recorder: FeedbackRecorder | None = None,
) -> FeedbackResult:
    """Record a user's feedback on the RAG answer of ``trace_id`` (see :class:`FeedbackRecorder`).

    Uses ``recorder``, else the one installed by ``configure()``, else one over the global
    providers that knows no retrieved documents (pass ``retrieved_ids`` then).
    """
    global _installed
    if recorder is None:
        with _lock:
            if _installed is None:
                _installed = FeedbackRecorder()
            recorder = _installed
    return recorder.record(
        trace_id, relevant_ids=relevant_ids, clicked_positions=clicked_positions, rating=rating,
        scale=scale, k=k, span_id=span_id, retrieved_ids=retrieved_ids,
    )
