"""The bounded queue between receiving and exporting, in memory or on disk (SQLite WAL).

Both queues hold encoded export requests and are bounded in *items* (spans, metric data points,
log records), counting the ones being exported: memory (or disk) never exceeds the bound by more
than one request, because a request larger than the whole queue is still admitted into an empty
queue rather than being refused forever. A full queue refuses with :class:`QueueFull`, which the
receivers turn into RESOURCE_EXHAUSTED + RetryInfo (gRPC) and 503 + Retry-After (HTTP).

Delivery contract: :meth:`get` hands each stored request to exactly one exporter worker, which
calls :meth:`done` once it was delivered or deliberately dropped; only then is its room freed (and
its row deleted). :class:`SqliteQueue` commits a request before ``put`` returns (WAL,
``synchronous=NORMAL``: durable across a kill -9 of the process, not across a power cut), so what
a client saw acknowledged survives a restart; after a restart every stored request is handed out
again (at-least-once: a request delivered in the instant before a crash may be delivered twice).
"""

from __future__ import annotations

import collections
import fcntl
import itertools
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Protocol

from otel_llm.gateway.component import Batch, Consumer, RetryableError, Signal

__all__ = ("Item", "Queue", "QueueFull", "MemoryQueue", "SqliteQueue", "Enqueue", "Admission")


@dataclass(frozen=True, slots=True)
class Item:
    """One stored export request."""

    key: int
    signal: Signal
    items: int
    payload: bytes


class QueueFull(RetryableError):
    """The queue has no room for the request now; retry after ``retry_after_s``."""

    reason = "queue_full"


class Queue(Protocol):
    """What the pipeline needs of a queue; both implementations are thread-safe."""

    capacity: int
    durable: bool
    """Whether what it holds survives the process."""

    def put(self, signal: Signal, items: int, payload: bytes) -> None: ...
    def has_room(self, items: int) -> bool: ...
    def get(self, timeout: float) -> Item | None: ...
    def done(self, item: Item) -> None: ...
    def size(self) -> int: ...
    def pending(self) -> int: ...
    def close(self) -> None: ...


class _Bounded:
    """Room accounting shared by both queues. Callers hold ``self._cond``."""

    def __init__(self, capacity: int, retry_after_s: float) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1 item, got {capacity}")
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        self._cond = threading.Condition()
        self._size = 0
        self._closed = False

    def has_room(self, items: int) -> bool:
        """Whether ``items`` more would fit now (a hint: ``put`` decides)."""
        with self._cond:
            return self._fits(items)

    def size(self) -> int:
        """Items stored, including those being exported."""
        with self._cond:
            return self._size

    def _fits(self, items: int) -> bool:
        return self._size == 0 or self._size + items <= self.capacity

    def _admit(self, items: int) -> None:
        if self._closed:
            raise RetryableError("the gateway is shutting down", reason="shutting_down")
        if not self._fits(items):
            raise QueueFull(
                f"queue full ({self._size} of {self.capacity} items): retry later",
                retry_after_s=self.retry_after_s,
            )


class MemoryQueue(_Bounded):
    """A FIFO in memory; what is left in it at shutdown is lost (counted by the caller)."""

    durable = False

    def __init__(self, capacity: int, *, retry_after_s: float = 1.0) -> None:
        super().__init__(capacity, retry_after_s)
        self._items: collections.deque[Item] = collections.deque()
        self._keys = itertools.count(1)

    def put(self, signal: Signal, items: int, payload: bytes) -> None:
        with self._cond:
            self._admit(items)
            self._items.append(Item(next(self._keys), signal, items, payload))
            self._size += items
            self._cond.notify()

    def get(self, timeout: float) -> Item | None:
        """The oldest request not yet handed out, waiting up to ``timeout`` s; None if none."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def done(self, item: Item) -> None:
        with self._cond:
            self._size -= item.items

    def pending(self) -> int:
        """Items not handed out yet."""
        with self._cond:
            return sum(item.items for item in self._items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class SqliteQueue(_Bounded):
    """A FIFO in ``<directory>/queue.sqlite3`` that survives restarts and kill -9.

    One gateway per directory: an exclusive ``flock`` on ``queue.lock`` (released by the kernel
    when the process dies) makes a second one fail at start instead of double-sending.
    """

    FILE = "queue.sqlite3"
    durable = True

    def __init__(self, directory: str, capacity: int, *, retry_after_s: float = 1.0) -> None:
        super().__init__(capacity, retry_after_s)
        os.makedirs(directory, exist_ok=True)
        lock_path = os.path.join(directory, "queue.lock")
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise ValueError(
                f"queue directory {directory!r} is in use by another gateway"
            ) from None
        self.path = os.path.join(directory, self.FILE)
        # isolation_level=None: autocommit, so each put is committed before it returns.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " signal TEXT NOT NULL, items INTEGER NOT NULL, payload BLOB NOT NULL)"
        )
        (stored,) = self._db.execute("SELECT COALESCE(SUM(items), 0) FROM batches").fetchone()
        self._size = int(stored)
        self._cursor = 0  # highest id handed out; ids only grow, taken rows are never given back

    def put(self, signal: Signal, items: int, payload: bytes) -> None:
        with self._cond:
            self._admit(items)
            self._db.execute(
                "INSERT INTO batches (signal, items, payload) VALUES (?, ?, ?)",
                (signal, items, payload),
            )
            self._size += items
            self._cond.notify()

    def get(self, timeout: float) -> Item | None:
        with self._cond:
            row = self._next()
            if row is None and not self._closed:
                self._cond.wait(timeout)
                row = self._next()
            if row is None:
                return None
            key, signal, items, payload = row
            self._cursor = key
            return Item(key, signal, items, bytes(payload))

    def done(self, item: Item) -> None:
        with self._cond:
            if not self._closed:  # after close the row stays: it is sent again on restart
                self._db.execute("DELETE FROM batches WHERE id = ?", (item.key,))
            self._size -= item.items

    def pending(self) -> int:
        with self._cond:
            if self._closed:
                return 0
            (count,) = self._db.execute(
                "SELECT COALESCE(SUM(items), 0) FROM batches WHERE id > ?", (self._cursor,)
            ).fetchone()
            return int(count)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._cond.notify_all()

    def _next(self) -> tuple[int, Signal, int, bytes] | None:
        if self._closed:
            return None
        row: tuple[int, Signal, int, bytes] | None = self._db.execute(
            "SELECT id, signal, items, payload FROM batches WHERE id > ? ORDER BY id LIMIT 1",
            (self._cursor,),
        ).fetchone()
        return row


class Enqueue:
    """Consumer that stores each batch in the queue (the last stage before the exporter)."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def consume(self, batch: Batch) -> None:
        if batch.items:
            self._queue.put(batch.signal, batch.items, batch.encoded())


class Admission:
    """Consumer that refuses early, before any enrichment work, when the queue is already full.

    The Collector's memory_limiter in miniature: cheap, first in the pipeline; the queue's own
    ``put`` remains the authority when two requests race for the last room.
    """

    def __init__(self, queue: Queue, next_consumer: Consumer, retry_after_s: float) -> None:
        self._queue = queue
        self._next = next_consumer
        self._retry_after_s = retry_after_s

    def consume(self, batch: Batch) -> None:
        if batch.items and not self._queue.has_room(batch.items):
            raise QueueFull(
                f"queue full ({self._queue.size()} of {self._queue.capacity} items): retry later",
                retry_after_s=self._retry_after_s,
            )
        self._next.consume(batch)
