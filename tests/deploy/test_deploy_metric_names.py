"""Every metric and label the dashboard and the alert rules query is one otel-llm exports.

The names are collected from a live in-process ``/metrics`` after a few real calls (a priced
chat with a project, a stream, a failure, an embedding, retrievals, an unpriced model), so a
renamed instrument or attribute breaks this test instead of leaving a panel empty.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Iterator

import pytest
from deploy_support import (
    PROMETHEUS_SERIES,
    SCRAPE_LABELS,
    dashboard_queries,
    parse_promql,
    rule_queries,
)
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

import otel_llm


class _RateLimited(Exception):
    """Looks like an SDK's 429 error to the classifier."""

    status_code = 429


@pytest.fixture(scope="module")
def exported() -> Iterator[dict[str, set[str]]]:
    """Sample name -> label names, scraped from a live in-process /metrics."""
    mp = pytest.MonkeyPatch()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_LLM_PRICES", "OTEL_LLM_RULES",
                 "OTEL_LLM_PROMETHEUS_PORT"):
        mp.delenv(name, raising=False)
    tracer_provider = TracerProvider()
    tel = otel_llm.configure(prometheus_port=0, tracer_provider=tracer_provider,
                             instrument=False)
    try:
        with otel_llm.llm_call("openai", "gpt-4o-mini", project="rag-api") as call:
            call.record_usage(input_tokens=1200, output_tokens=80, cached_input_tokens=200)
            call.set_response(model="gpt-4o-mini", finish_reasons=["stop"])
        with otel_llm.llm_call("openai", "gpt-4o-mini", stream=True) as call:
            call.record_first_chunk()
            call.record_usage(input_tokens=300, output_tokens=40)
        with pytest.raises(_RateLimited), otel_llm.llm_call("openai", "gpt-4o"):
            raise _RateLimited("429 Too Many Requests")
        with otel_llm.embedding("openai", "text-embedding-3-small") as call:
            call.record_usage(input_tokens=50)
        with otel_llm.retrieval("docs", top_k=5) as search:
            search.record_documents([("a", 0.9), ("b", 0.7)])
        with otel_llm.retrieval("docs", top_k=5) as search:
            search.record_documents([])
        with otel_llm.llm_call("selfhosted", "our-finetune-v1") as call:
            call.record_usage(input_tokens=10, output_tokens=5)
        assert tel.prometheus_port
        url = f"http://127.0.0.1:{tel.prometheus_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        tel.shutdown()
        tracer_provider.shutdown()
        mp.undo()
    names: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names[sample.name].update(sample.labels)
    yield dict(names)


def test_the_scrape_has_the_contract_metrics(exported: dict[str, set[str]]) -> None:
    # DESIGN.md §3/§8: these exact Prometheus names are the contract.
    for name in ("otel_llm_cost_usd_total", "otel_llm_errors_total",
                 "gen_ai_client_token_usage_bucket", "gen_ai_client_operation_duration_seconds_sum",
                 "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                 "otel_llm_retrieval_documents_bucket", "otel_llm_alerts_firing"):
        assert name in exported, sorted(exported)


QUERIES = dashboard_queries() + rule_queries()


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_shipped_promql_uses_only_exported_metrics_and_labels(
        exported: dict[str, set[str]], where: str, expr: str) -> None:
    query = parse_promql(expr)
    assert query.metrics, f"{where}: no metric found in {expr!r}"
    unknown = {m for m in query.metrics if m not in exported and m not in PROMETHEUS_SERIES}
    assert not unknown, f"{where}: not exported: {sorted(unknown)}"
    ours = [s for s in query.selectors if s.metric not in PROMETHEUS_SERIES]
    for selector in ours:
        missing = selector.labels - exported[selector.metric] - SCRAPE_LABELS
        assert not missing, f"{where}: {selector.metric} has no label {sorted(missing)}"
    if ours and len(ours) == len(query.selectors):
        # by (...) / on (...) must name labels some metric of the expression carries.
        available = set().union(*(exported[s.metric] for s in ours)) | SCRAPE_LABELS | query.made
        missing = query.grouping - available
        assert not missing, f"{where}: grouping by unknown labels {sorted(missing)}"
