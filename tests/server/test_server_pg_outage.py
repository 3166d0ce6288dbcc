"""A PostgreSQL outage: readiness turns 503 and back to 200, accounting never waits, and every
accounted call is either written after the restart or counted as dropped (within the bound)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from otel_llm.server import create_app
from otel_llm.store import CallStore, Window
from tests.pg_fixtures import PostgresServer, pg_server, pg_url, wait_until  # noqa: F401
from tests.store.call_factory import make_record

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def outage(pg_server: PostgresServer) -> Iterator[PostgresServer]:  # noqa: F811
    yield pg_server
    pg_server.start()  # whatever happened in the test, leave the server up for the others


def accounted_in(store: CallStore, count: int, offset: int) -> float:
    """Offer ``count`` calls; return the slowest single ``observe`` in seconds."""
    slowest = 0.0
    for i in range(count):
        record = make_record(NOW_MS - 1000 - offset - i, trace_id=f"{offset + i + 1:032x}")
        started = time.perf_counter()
        store.observe(record)
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_ready_is_503_while_postgres_is_down_and_200_after_restart(
    outage: PostgresServer, pg_url: str,  # noqa: F811
) -> None:
    store = CallStore(pg_url, flush_interval_s=0.05, max_pending=1000, connect_timeout_s=2)
    store.start()
    try:
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            assert client.get("/health/ready").status_code == 200
            accounted_in(store, 50, 0)
            assert store.flush(10)

            outage.stop()
            ready = client.get("/health/ready")
            assert ready.status_code == 503
            body = ready.json()
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert body["error"]["details"]["checks"]["store"]["status"] == "fail"
            assert client.get("/health/live").status_code == 200
            assert client.get("/api/v1/metrics/summary").status_code == 503
            # Accounting during the outage: queued, never waiting for the database.
            slowest = accounted_in(store, 300, 50)
            assert slowest < 0.2, f"observe took {slowest:.3f}s during the outage"
            assert not store.flush(0.3)  # nothing can be written now
            assert store.healthy is False

            outage.start()
            assert wait_until(lambda: client.get("/health/ready").status_code == 200, 20)
            assert store.flush(20)
            summary = client.get("/api/v1/metrics/summary", params={"days": 1}).json()
            assert summary["total_calls"] == 350
            assert store.written == 350 and store.dropped == {}
    finally:
        store.shutdown()


def test_loss_beyond_the_bound_is_counted(outage: PostgresServer,
                                          pg_url: str) -> None:  # noqa: F811
    store = CallStore(pg_url, flush_interval_s=0.05, max_pending=40, batch_size=10,
                      connect_timeout_s=2)
    store.start()
    try:
        outage.stop()
        sent = 200
        slowest = accounted_in(store, sent, 0)
        assert slowest < 0.2
        assert store.pending <= 40
        outage.start()
        assert store.flush(20)
        dropped = store.dropped.get("queue_full", 0)
        assert store.written + dropped == sent
        assert store.written >= 40 and dropped == sent - store.written
        assert store.summary(_last_day()).total_calls == store.written
    finally:
        store.shutdown()


def _last_day() -> Window:
    now = time.time()
    return Window(now - 86400, now + 1)
