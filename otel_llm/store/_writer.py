"""The store's write path: a bounded buffer filled on the caller's thread, drained in batches by
one background thread that retries while the database is away.

``offer`` is all the accounting path ever does here: take a lock, append or count a drop,
maybe wake the writer. It never touches the database, so a slow or dead database costs the
caller nothing; the bound turns an outage into counted losses instead of unbounded memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger("otel_llm.store")

T = TypeVar("T")

DropCallback = Callable[[int, str], None]
"""``on_drop(count, reason)``; reasons: ``queue_full``, ``rejected``, ``shutdown``."""


class BatchWriter(Generic[T]):
    """Buffers items and hands them to ``write(batch)`` on a daemon thread.

    * At most ``max_pending`` items wait, the batch being written included; more are dropped
      and reported to ``on_drop(n, "queue_full")``.
    * A batch is written when ``batch_size`` items wait or ``flush_interval_s`` passed.
    * ``write`` raising an exception for which ``retryable(exc)`` is true keeps the batch and
      retries it with exponential backoff (``backoff_s`` doubling up to ``max_backoff_s``);
      any other exception drops the batch (``"rejected"``): retrying it would never succeed.
    * ``maintenance()`` runs on the same thread every ``maintenance_interval_s`` (retention).
    """

    def __init__(
        self,
        write: Callable[[list[T]], None],
        *,
        retryable: Callable[[BaseException], bool],
        on_drop: DropCallback,
        on_health: Callable[[bool, BaseException | None], None],
        max_pending: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        maintenance: Callable[[], None] | None = None,
        maintenance_interval_s: float = 3600.0,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be at least 1")
        if flush_interval_s <= 0 or backoff_s <= 0 or max_backoff_s < backoff_s:
            raise ValueError("flush_interval_s, backoff_s > 0 and max_backoff_s >= backoff_s")
        self._write = write
        self._retryable = retryable
        self._on_drop = on_drop
        self._on_health = on_health
        self._max_pending = max_pending
        self._batch_size = min(batch_size, max_pending)
        self._flush_interval_s = flush_interval_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._maintenance = maintenance
        self._maintenance_interval_s = maintenance_interval_s
        self._items: deque[T] = deque()
        self._inflight = 0
        self._cond = threading.Condition(threading.Lock())
        self._flush_now = False
        self._closing = False  # no new items; drain what is queued
        self._abort = threading.Event()  # stop retrying; drop what is left
        self._thread: threading.Thread | None = None

    # -- the caller's side -------------------------------------------------------------------
    def offer(self, item: T) -> bool:
        """Queue ``item``; False (and a counted drop) when full or closed. Never blocks on I/O."""
        with self._cond:
            if self._closing:
                reason = "shutdown"
            elif len(self._items) + self._inflight >= self._max_pending:
                reason = "queue_full"
            else:
                self._items.append(item)
                if len(self._items) >= self._batch_size:
                    self._cond.notify_all()
                return True
        self._on_drop(1, reason)
        return False

    @property
    def pending(self) -> int:
        """Items not yet written: queued plus the batch being written."""
        with self._cond:
            return len(self._items) + self._inflight

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name="otel-llm-store", daemon=True)
            self._thread.start()

    def flush(self, timeout_s: float) -> bool:
        """Write everything queued now; True when nothing is pending within ``timeout_s``."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._items or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout_s: float) -> None:
        """Stop accepting, drain for up to ``timeout_s``, drop (and count) the rest. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout_s))
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        if thread is not None:
            thread.join(self._max_backoff_s + 5.0)
        with self._cond:
            left = len(self._items)
            self._items.clear()
            self._cond.notify_all()
        if left:
            self._on_drop(left, "shutdown")

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        due = time.monotonic()  # retention runs once at start, then every interval
        while True:
            if self._maintenance is not None and time.monotonic() >= due:
                self._run_maintenance()
                due = time.monotonic() + self._maintenance_interval_s
            batch = self._take(due if self._maintenance is not None else None)
            if batch is None:
                return
            if batch:
                self._write_with_retry(batch)

    def _run_maintenance(self) -> None:
        if self._maintenance is None or self._abort.is_set():
            return
        try:
            self._maintenance()
        except Exception as exc:  # retention must not stop the writes; tried again next time
            logger.warning("otel-llm store: maintenance failed: %r", exc)

    def _take(self, maintenance_due: float | None) -> list[T] | None:
        """The next batch; [] when maintenance is due; None when closed and drained."""
        with self._cond:
            started = time.monotonic()
            while True:
                if self._abort.is_set() or (self._closing and not self._items):
                    return None
                now = time.monotonic()
                waited = now - started
                if self._items and (
                    len(self._items) >= self._batch_size
                    or self._flush_now
                    or self._closing
                    or waited >= self._flush_interval_s
                ):
                    break
                if maintenance_due is not None and now >= maintenance_due:
                    return []
                timeout = self._flush_interval_s - waited
                if maintenance_due is not None:
                    timeout = min(timeout, maintenance_due - now)
                self._cond.wait(max(0.001, timeout))
            count = min(self._batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            self._inflight = count
            if not self._items:
                self._flush_now = False
            return batch

    def _write_with_retry(self, batch: list[T]) -> None:
        delay = self._backoff_s
        try:
            while True:
                try:
                    self._write(batch)
                except Exception as exc:
                    if not self._retryable(exc):
                        logger.warning(
                            "otel-llm store: a batch of %d call(s) was rejected and dropped: %r",
                            len(batch), exc,
                        )
                        self._on_drop(len(batch), "rejected")
                        return
                    self._on_health(False, exc)
                    if self._abort.wait(delay):
                        self._on_drop(len(batch), "shutdown")
                        return
                    delay = min(delay * 2, self._max_backoff_s)
                    continue
                self._on_health(True, None)
                return
        finally:
            with self._cond:
                self._inflight = 0
                self._cond.notify_all()
