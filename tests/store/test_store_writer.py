"""The batch writer: bounded, never blocking the caller, retrying outages, counting every loss."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from otel_llm.store._writer import BatchWriter
from tests.pg_fixtures import wait_until


class Outage(Exception):
    pass


class Sink:
    """A ``write`` that can be made to fail (retryably or not) or to hang."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail: type[Exception] | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.drops: dict[str, int] = {}
        self.health: list[bool] = []
        self.lock = threading.Lock()

    def write(self, batch: list[int]) -> None:
        assert self.gate.wait(10)
        if self.fail is not None:
            raise self.fail("database is away")
        with self.lock:
            self.batches.append(list(batch))

    def on_drop(self, count: int, reason: str) -> None:
        with self.lock:
            self.drops[reason] = self.drops.get(reason, 0) + count

    def on_health(self, ok: bool, _exc: BaseException | None) -> None:
        self.health.append(ok)

    @property
    def written(self) -> list[int]:
        with self.lock:
            return [i for batch in self.batches for i in batch]


@pytest.fixture
def sink() -> Sink:
    return Sink()


def make(sink: Sink, **kwargs: object) -> BatchWriter[int]:
    options: dict[str, object] = {"flush_interval_s": 0.02, "backoff_s": 0.01,
                                  "max_backoff_s": 0.05, **kwargs}
    return BatchWriter(sink.write, retryable=lambda e: isinstance(e, Outage),
                       on_drop=sink.on_drop, on_health=sink.on_health,
                       **options)  # type: ignore[arg-type]


@pytest.fixture
def writer(sink: Sink) -> Iterator[BatchWriter[int]]:
    w = make(sink, max_pending=100, batch_size=10)
    w.start()
    yield w
    sink.gate.set()
    w.close(2)


def test_writes_everything_in_batches_in_order(sink: Sink, writer: BatchWriter[int]) -> None:
    for i in range(95):
        assert writer.offer(i)
    assert writer.flush(5)
    assert sink.written == list(range(95))
    assert max(len(b) for b in sink.batches) <= 10
    assert writer.pending == 0 and sink.drops == {}


def test_a_hung_database_never_blocks_offer_and_the_bound_counts_losses(
    sink: Sink, writer: BatchWriter[int]
) -> None:
    sink.gate.clear()  # the next write hangs, as on a dead TCP connection
    writer.offer(-1)
    assert wait_until(lambda: writer.pending == 1 and not writer.flush(0), 5)
    started = time.perf_counter()
    accepted = sum(writer.offer(i) for i in range(500))
    assert time.perf_counter() - started < 0.5
    assert accepted == 99  # 100 pending at most, the hung batch included
    assert sink.drops == {"queue_full": 401}
    sink.gate.set()
    assert writer.flush(5)
    assert len(sink.written) == 100


def test_retryable_failures_keep_the_batch_until_the_database_is_back(
    sink: Sink, writer: BatchWriter[int]
) -> None:
    sink.fail = Outage
    for i in range(25):
        writer.offer(i)
    assert wait_until(lambda: False in sink.health, 5)
    assert not writer.flush(0.1)
    sink.fail = None
    assert writer.flush(5)
    assert sorted(sink.written) == list(range(25)) and sink.drops == {}
    assert sink.health[-1] is True


def test_a_permanent_failure_drops_only_that_batch(sink: Sink, writer: BatchWriter[int]) -> None:
    sink.fail = ValueError
    writer.offer(1)
    assert wait_until(lambda: sink.drops.get("rejected") == 1, 5)
    sink.fail = None
    writer.offer(2)
    assert writer.flush(5) and sink.written == [2]


def test_close_drains_then_counts_what_is_left(sink: Sink) -> None:
    writer = make(sink, max_pending=1000, batch_size=10)
    writer.start()
    for i in range(50):
        writer.offer(i)
    writer.close(5)
    assert sink.written == list(range(50))
    assert not writer.offer(99) and sink.drops == {"shutdown": 1}


def test_close_during_an_outage_counts_the_stranded_calls(sink: Sink) -> None:
    writer = make(sink, max_pending=1000, batch_size=10)
    sink.fail = Outage
    writer.start()
    for i in range(30):
        writer.offer(i)
    assert wait_until(lambda: False in sink.health, 5)
    started = time.monotonic()
    writer.close(0.2)
    assert time.monotonic() - started < 3
    assert sink.drops == {"shutdown": 30} and sink.written == []
    writer.close(0.2)  # idempotent


def test_maintenance_runs_at_start_and_on_its_interval(sink: Sink) -> None:
    runs: list[float] = []
    writer = make(sink, maintenance=lambda: runs.append(time.monotonic()),
                  maintenance_interval_s=0.05)
    writer.start()
    try:
        assert wait_until(lambda: len(runs) >= 3, 5)
        writer.offer(1)
        assert writer.flush(5)
    finally:
        writer.close(1)


def test_a_failing_maintenance_does_not_stop_the_writes(sink: Sink) -> None:
    def broken() -> None:
        raise RuntimeError("retention query failed")

    writer = make(sink, maintenance=broken, maintenance_interval_s=0.01)
    writer.start()
    try:
        writer.offer(7)
        assert writer.flush(5) and sink.written == [7]
    finally:
        writer.close(1)


def test_offer_before_start_is_kept_and_invalid_settings_are_refused(sink: Sink) -> None:
    writer = make(sink)
    writer.offer(1)
    assert not writer.flush(0.05)  # not started: nothing can be written yet
    writer.start()
    assert writer.flush(5) and sink.written == [1]
    writer.close(1)
    with pytest.raises(ValueError):
        make(sink, max_pending=0)
    with pytest.raises(ValueError):
        make(sink, flush_interval_s=0)
