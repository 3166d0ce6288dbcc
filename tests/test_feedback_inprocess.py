"""record_feedback() in-process: scored against what the trace's retrieval hook returned."""

from __future__ import annotations

import pytest

import otel_llm
from tests.conftest import Harness
from tests.test_hooks import count_of


def test_feedback_scores_against_the_retrieved_documents(harness: Harness) -> None:
    with otel_llm.rag_pipeline("support-bot"), otel_llm.retrieval("kb", top_k=4) as r:
        r.record_documents([("d1", 0.9), ("d2", 0.8), ("d3", 0.7), ("d4", 0.1)])
    retrieval = next(s for s in harness.spans() if s.name == "retrieval kb")
    trace_id = f"{retrieval.context.trace_id:032x}"

    result = otel_llm.record_feedback(trace_id, relevant_ids=["d2", "d9"], clicked_positions=[1],
                                      rating=4)
    assert result.retrieved == 4
    assert result.precision_at_k == pytest.approx(2 / 4)  # d1 (clicked) and d2 of the top 4
    assert result.recall == pytest.approx(2 / 3)  # of d1, d2, d9
    assert result.satisfaction == pytest.approx(0.8)
    assert count_of(harness, "otel_llm.rag.precision") == 1
    # the document ids themselves never reach the span
    assert "d1" not in str(dict(retrieval.attributes or {}))
