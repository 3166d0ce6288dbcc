"""The call store on SQLite and PostgreSQL: what it records, its schema, retention, URLs."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from otel_llm.core.types import CallRecord, Cost, LLMCall
from otel_llm.store import SCHEMA_VERSION, CallStore, SchemaError, Window, database_url
from tests.pg_fixtures import db_url  # noqa: F401  (fixture)
from tests.store.call_factory import make_record

NOW = 1_741_996_800.0  # 2025-03-15T00:00:00Z


@pytest.fixture
def store(db_url: str) -> Iterator[CallStore]:  # noqa: F811
    store = CallStore(db_url, flush_interval_s=0.05, clock=lambda: NOW)
    store.start()
    yield store
    store.shutdown()


def all_calls(store: CallStore) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM otel_llm_calls ORDER BY id")).mappings()
        return [dict(r) for r in rows]


def test_every_field_of_a_call_is_recorded(store: CallStore) -> None:
    call = LLMCall(
        operation="chat", provider="anthropic", request_model="claude-x",
        response_model="claude-x-2025", input_tokens=1200, output_tokens=300,
        cache_read_tokens=800, cache_creation_tokens=100, reasoning_tokens=50,
        duration_s=1.25, time_to_first_chunk_s=0.2, is_error=False, project="search",
        server_address="api.anthropic.com",
    )
    record = CallRecord(call, Cost(0.0123, 0.01, 0.0023, "override"), None, NOW - 1.5,
                        trace_id="a" * 32, span_id="b" * 16, service="rag-api")
    store.observe(record)
    failed = make_record(int(NOW * 1000) - 1, error_type="rate_limit", unpriced=True)
    store.observe(failed)
    assert store.flush(10)
    first, second = all_calls(store)
    assert {k: v for k, v in first.items() if k != "id"} == {
        "time_ms": int(NOW * 1000) - 1500, "service": "rag-api", "project": "search",
        "trace_id": "a" * 32, "span_id": "b" * 16, "operation": "chat",
        "provider": "anthropic", "model": "claude-x-2025", "request_model": "claude-x",
        "response_model": "claude-x-2025", "input_tokens": 1200, "output_tokens": 300,
        "cache_read_tokens": 800, "cache_creation_tokens": 100, "reasoning_tokens": 50,
        "cost_usd": 0.0123, "cost_source": "override", "duration_ms": 1250.0,
        "time_to_first_chunk_ms": 200.0, "success": True, "error_type": None,
        "error_category": None, "error_severity": None, "data_source": None,
        "retrieval_documents": None, "document_ids": None,
    }
    assert (second["success"], second["error_type"], second["error_category"],
            second["error_severity"]) == (False, "rate_limit", "resource_error", "high")
    assert second["cost_usd"] is None and second["cost_source"] == "unknown_model"


def test_retrieved_documents_are_kept_per_trace(store: CallStore) -> None:
    trace = "c" * 32
    store.observe(make_record(1000, operation="retrieval", trace_id=trace, span_id="1" * 16,
                              documents=("old",)))
    store.observe(make_record(2000, operation="retrieval", trace_id=trace, span_id="2" * 16,
                              documents=("d1", "d2"), data_source="kb", project="p"))
    store.observe(make_record(3000, operation="chat", trace_id=trace, span_id="3" * 16))
    assert store.flush(10)
    latest = store.retrieved(trace)
    assert latest is not None
    assert (latest.span_id, latest.document_ids, latest.data_source, latest.project) == (
        "2" * 16, ("d1", "d2"), "kb", "p")
    older = store.retrieved(trace, "1" * 16)
    assert older is not None and older.document_ids == ("old",)
    assert store.retrieved("d" * 32) is None


def test_odd_values_are_stored_safely(store: CallStore) -> None:
    call = LLMCall(operation="chat", provider="p" * 500, request_model="m" * 1000,
                   input_tokens=10**15, output_tokens=-5, duration_s=math.nan)
    store.observe(CallRecord(call, Cost(math.inf, None, None, "price_table"), None, NOW,
                             trace_id="e" * 40, service="s" * 300))
    assert store.flush(10)
    [row] = all_calls(store)
    assert row["provider"] == "p" * 128 and row["model"] == "m" * 255
    assert row["input_tokens"] == 2**31 - 1 and row["output_tokens"] == 0
    assert row["duration_ms"] is None and row["cost_usd"] is None
    assert row["trace_id"] == "e" * 32 and store.dropped == {}


def test_many_threads_accounting_at_once_lose_nothing(store: CallStore) -> None:
    def account(worker: int) -> None:
        for i in range(200):
            store.observe(make_record(int(NOW * 1000) - i, trace_id=f"{worker:08x}{i:024x}"))

    threads = [threading.Thread(target=account, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.flush(20)
    assert store.written == 1600 and store.dropped == {}
    assert store.summary(Window(NOW - 60, NOW + 1)).total_calls == 1600


def test_schema_is_versioned_and_a_second_start_changes_nothing(db_url: str) -> None:  # noqa: F811
    first = CallStore(db_url)
    first.start()
    first.observe(make_record(1000))
    assert first.flush(10)
    first.shutdown()
    again = CallStore(db_url)
    again.start()
    try:
        with again.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version FROM otel_llm_schema")).scalar()
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("otel_llm_calls")}
        assert version == SCHEMA_VERSION
        assert {"ix_otel_llm_calls_time", "ix_otel_llm_calls_project_time",
                "ix_otel_llm_calls_provider_time"} <= indexes
        assert again.calls()[0].timestamp == 1.0
        with again.engine.begin() as conn:
            conn.execute(sa.text("UPDATE otel_llm_schema SET version = :v"),
                         {"v": SCHEMA_VERSION + 1})
    finally:
        again.shutdown()
    newer = CallStore(db_url)
    with pytest.raises(SchemaError, match="newer"):
        newer.start()
    newer.shutdown()


def test_retention_deletes_calls_older_than_the_limit(db_url: str) -> None:  # noqa: F811
    clock = [NOW]
    store = CallStore(db_url, retention_days=30, retention_interval_s=0.05,
                      flush_interval_s=0.05, clock=lambda: clock[0])
    store.start()
    try:
        day_ms = 86_400_000
        for age_days in (40, 31, 29, 1):
            store.observe(make_record(int(NOW * 1000) - age_days * day_ms))
        assert store.flush(10)
        from tests.pg_fixtures import wait_until

        # The writer's retention pass drops the two calls older than 30 days.
        assert wait_until(lambda: len(store.calls(limit=10)) == 2, 10)
        clock[0] = NOW + 2 * 86400
        assert wait_until(lambda: len(store.calls(limit=10)) == 1, 10)
    finally:
        store.shutdown()
    with pytest.raises(ValueError):
        CallStore(db_url, retention_days=0)


def test_a_database_down_at_start_is_retried(tmp_path: Path) -> None:
    # A SQLite file in a directory that appears later stands in for a server not up yet.
    missing = tmp_path / "later"
    store = CallStore(f"sqlite:///{missing / 'calls.db'}", flush_interval_s=0.05)
    store.start()  # warns, does not raise
    try:
        store.observe(make_record(1000))
        assert not store.ping()
        missing.mkdir()
        assert store.flush(15) and store.written == 1
        assert store.ping()
    finally:
        store.shutdown()


@pytest.mark.parametrize(("url", "driver"), [
    ("sqlite:///otel-llm.db", "sqlite"),
    ("sqlite:////var/lib/otel-llm/calls.db", "sqlite"),
    ("sqlite://", "sqlite"),
    ("postgresql://u:p@db:5432/calls", "postgresql+psycopg"),
    ("postgres://u@db/calls", "postgresql+psycopg"),
    ("postgresql+psycopg://u@db/calls", "postgresql+psycopg"),
])
def test_database_urls(url: str, driver: str) -> None:
    assert database_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@db/x", "postgresql+psycopg2://u@db/x", "calls.db",
                                 "http://db/x"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--db"):
        CallStore(url)


def test_the_password_never_appears_in_the_store_url() -> None:
    store = CallStore("postgresql://user:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in store.url and "hunter2" not in repr(store.url)
    store.shutdown()


def test_an_in_memory_database_is_shared_by_the_writer_and_the_readers() -> None:
    store = CallStore("sqlite://", flush_interval_s=0.05)
    store.start()
    try:
        store.observe(make_record(int(time.time() * 1000)))
        assert store.flush(10)
        assert len(store.calls()) == 1
    finally:
        store.shutdown()


def test_losses_and_backlog_are_metrics(tmp_path: Path) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}", max_pending=5,
                      meter_provider=provider)
    try:
        for i in range(8):  # not started: the first 5 wait, 3 are dropped
            store.observe(make_record(1000 + i))
        data = reader.get_metrics_data()
        assert data is not None
        points = {m.name: list(m.data.data_points) for rm in data.resource_metrics
                  for sm in rm.scope_metrics for m in sm.metrics}
        [dropped] = points["otel_llm.store.dropped"]
        assert dropped.value == 3 and dict(dropped.attributes) == {"reason": "queue_full"}
        assert [p.value for p in points["otel_llm.store.pending"]] == [5]
        assert store.dropped == {"queue_full": 3}
    finally:
        store.shutdown(0)
        provider.shutdown()
    assert store.dropped == {"queue_full": 3, "shutdown": 5}
