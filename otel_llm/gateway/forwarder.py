"""The forwarder: exporter workers that drain the queue into a :class:`Sender`, with retry.

Retry policy (the Collector's exporterhelper, minus its give-up timer): a retryable failure is
retried with exponential backoff and jitter, or after the delay the downstream asked for
(RetryInfo / Retry-After, capped at ``max_retry_after_s``), for as long as the gateway runs — the
queue's bound, not a timer, limits what an outage may cost. A permanent failure drops the request,
counted by reason and logged once per reason. The request leaves the queue (:meth:`Queue.done`)
only when delivered or dropped.

Shutdown drains: workers keep sending until the queue is empty or the deadline passes. What is
still in a memory queue then is dropped and counted (``reason=shutdown``); a disk queue keeps it
for the next start.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from otel_llm.gateway.component import PermanentError, RetryableError
from otel_llm.gateway.exporter import Sender
from otel_llm.gateway.queue import Item, Queue
from otel_llm.gateway.selfmetrics import GatewayMetrics

__all__ = ("Backoff", "Forwarder")

logger = logging.getLogger("otel_llm.gateway")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with ±20% jitter; a downstream's own hint wins (up to a cap)."""

    initial_s: float = 0.5
    max_s: float = 5.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, hint_s: float | None = None) -> float:
        if hint_s is not None and hint_s >= 0:
            return float(min(hint_s, self.max_retry_after_s))
        base = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 30))
        jitter: float = random.uniform(0.8, 1.2)
        return base * jitter


class Forwarder:
    """Component: ``workers`` threads taking requests from ``queue`` and sending them."""

    def __init__(
        self,
        queue: Queue,
        sender: Sender,
        metrics: GatewayMetrics,
        *,
        workers: int = 2,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"export workers must be at least 1, got {workers}")
        self._queue = queue
        self._sender = sender
        self._metrics = metrics
        self._workers = workers
        self._backoff = backoff or Backoff()
        self._timeout_s = timeout_s
        self._threads: list[threading.Thread] = []
        self._draining = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._failing = False
        self._warned: set[str] = set()
        self._started = False
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
            for index in range(self._workers):
                thread = threading.Thread(
                    target=self._run, name=f"otel-llm-export-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def shutdown(self, deadline_s: float = 10.0) -> None:
        """Drain for up to ``deadline_s`` seconds, then stop. Call after the receivers stopped."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._draining.set()
        end = time.monotonic() + max(0.0, deadline_s)
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        self._abort.set()
        for thread in self._threads:
            thread.join(self._timeout_s + 1.0)
        if not self._queue.durable:
            while (item := self._queue.get(0)) is not None:
                self._drop_counted(
                    item.signal, item.items, "shutdown", "not delivered before the drain deadline"
                )
                self._queue.done(item)
        self._sender.close()

    def _run(self) -> None:
        while not self._abort.is_set():
            item = self._queue.get(0.1)
            if item is None:
                if self._draining.is_set():
                    return  # queue empty (nothing pending): the drain is done
                continue
            self._deliver(item)

    def _deliver(self, item: Item) -> None:
        attempt = 0
        attrs = {"signal": item.signal}
        while True:
            started = time.perf_counter()
            try:
                rejected = self._sender.send(item.signal, item.payload, self._timeout_s)
            except RetryableError as exc:
                self._observe(started, "retry")
                self._set_failing(True, str(exc))
                if self._abort.wait(self._backoff.delay(attempt, exc.retry_after_s)):
                    if not self._queue.durable:  # a disk queue keeps it for the next start
                        self._drop_counted(item.signal, item.items, "shutdown", str(exc))
                        self._queue.done(item)
                    return
                attempt += 1
                continue
            except PermanentError as exc:
                self._observe(started, "permanent_error")
                self._drop_counted(item.signal, item.items, exc.reason, str(exc))
                self._queue.done(item)
                return
            except Exception as exc:  # a bug of ours: drop rather than retry it forever
                self._observe(started, "internal_error")
                self._drop_counted(item.signal, item.items, "internal_error", repr(exc))
                self._queue.done(item)
                return
            self._observe(started, "ok")
            self._set_failing(False, "")
            rejected = min(max(rejected, 0), item.items)
            self._metrics.forwarded.add(item.items - rejected, attrs)
            if rejected:
                self._drop_counted(
                    item.signal, rejected, "downstream_rejected", "partial success from downstream"
                )
            self._queue.done(item)
            return

    def _observe(self, started: float, outcome: str) -> None:
        self._metrics.export_duration.record(time.perf_counter() - started, {"outcome": outcome})

    def _drop_counted(self, signal: str, items: int, reason: str, detail: str) -> None:
        self._metrics.dropped.add(items, {"signal": signal, "reason": reason})
        with self._lock:
            first = reason not in self._warned
            self._warned.add(reason)
        if first:
            logger.warning(
                "otel-llm serve: dropped %d %s item(s) for %s (%s): %s; "
                "further drops for this reason are only counted",
                items,
                signal,
                self._sender.endpoint,
                reason,
                detail,
            )

    @property
    def failing(self) -> bool:
        """True while the downstream is refusing or unreachable (for health checks)."""
        return self._failing

    def _set_failing(self, failing: bool, detail: str) -> None:
        # One line when the downstream goes away and one when it is back, not one per retry.
        with self._lock:
            if failing == self._failing:
                return
            self._failing = failing
        if failing:
            logger.warning(
                "otel-llm serve: downstream %s unavailable (%s); retrying, requests stay queued",
                self._sender.endpoint,
                detail,
            )
        else:
            logger.info("otel-llm serve: downstream %s reachable again", self._sender.endpoint)
