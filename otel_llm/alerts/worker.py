"""Delivery off the request path: per-notifier threads, bounded queues, retry with backoff.

Each notifier gets its own daemon thread and bounded queue, so a notifier that times out or
answers 500 delays only itself. Nothing here ever runs on the thread of an LLM call.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry.metrics import MeterProvider, get_meter_provider

from otel_llm import semconv as sc
from otel_llm.alerts.evaluator import Alert
from otel_llm.alerts.notifiers import DeliveryError, Notifier
from otel_llm.version import __version__

__all__ = ["METRIC_ALERTS_NOTIFICATIONS", "NotifierWorker", "backoff_delay"]

logger = logging.getLogger("otel_llm")

METRIC_ALERTS_NOTIFICATIONS = sc.METRIC_ALERTS_NOTIFICATIONS
# Outcomes of otel_llm.alerts.notifications: a delivered batch, a failed attempt that will be
# retried, a batch given up on (permanent error or attempts exhausted), a batch dropped because
# the notifier's queue was full.
SUCCESS, RETRY, FAILURE, DROPPED = "success", "retry", "failure", "dropped"


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (0-based): exponential, capped, with jitter.

    The jitter keeps half the delay ("equal jitter"), so delays still grow while many
    processes that failed together do not retry in lockstep.
    """
    delay = min(maximum, initial * 2.0**attempt)
    return delay / 2 + rng.random() * delay / 2


class _Lane:
    """One notifier's queue and thread."""

    def __init__(self, notifier: Notifier, worker: NotifierWorker) -> None:
        self.notifier = notifier
        self.worker = worker
        self.queue: deque[list[Alert]] = deque()
        self.cond = threading.Condition()
        self.busy = False
        self.failing = False
        self.last_resend = float("-inf")
        self.thread = threading.Thread(
            target=self._run, name=f"otel-llm-notifier-{notifier.name}", daemon=True
        )

    def put(self, batch: list[Alert]) -> None:
        with self.cond:
            if len(self.queue) >= self.worker.queue_size:
                # The newest state matters most: drop the oldest batch.
                self.queue.popleft()
                self.worker.count(self.notifier, DROPPED)
            self.queue.append(batch)
            self.cond.notify_all()

    def idle(self) -> bool:
        return not self.queue and not self.busy

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.worker.stopping:
                    self.cond.wait()
                if not self.queue:
                    return
                batch = self.queue.popleft()
                self.busy = True
            try:
                self._deliver(batch)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def _deliver(self, batch: list[Alert]) -> None:
        worker, notifier = self.worker, self.notifier
        attempt = 0
        while True:
            try:
                notifier.send(batch)
            except DeliveryError as exc:
                last = (not exc.retryable or attempt + 1 >= worker.max_attempts
                        or worker.stopping)
                worker.count(notifier, FAILURE if last else RETRY)
                self._warn(str(exc), last)
                if last:
                    return
                worker.sleep(backoff_delay(attempt, worker.initial_backoff,
                                           worker.max_backoff, worker.rng))
                if worker.stopping:  # woken by shutdown: give up rather than try again
                    worker.count(notifier, FAILURE)
                    return
                attempt += 1
                continue
            except Exception as exc:  # a bug in a notifier must not kill its thread
                worker.count(notifier, FAILURE)
                self._warn(f"unexpected {type(exc).__name__}", True)
                return
            worker.count(notifier, SUCCESS)
            if self.failing:
                self.failing = False
                logger.warning("otel-llm: alert notifier %r delivers again", notifier.name)
            return

    def _warn(self, reason: str, giving_up: bool) -> None:
        # Once per failure streak: a dead receiver must not flood the logs.
        if self.failing:
            return
        self.failing = True
        logger.warning(
            "otel-llm: alert notifier %r failed (%s); %s", self.notifier.name, reason,
            "giving up on this batch" if giving_up else "retrying with backoff",
        )


class NotifierWorker:
    """Hands alerts to notifiers on background threads, with retry and backoff.

    :meth:`submit` never blocks: each notifier's queue holds at most ``queue_size`` batches
    and drops the oldest when full. A failed attempt is retried up to ``max_attempts`` times in
    all, after :func:`backoff_delay`; ``sleep`` and ``rng`` are injectable for tests (the
    default sleep wakes up at shutdown). Every outcome is counted in
    ``otel_llm.alerts.notifications{notifier, outcome}``.
    """

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        meter_provider: MeterProvider | None = None,
        queue_size: int = 100,
        max_attempts: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"notifier names must be unique, got {names}")
        if queue_size < 1 or max_attempts < 1:
            raise ValueError("queue_size and max_attempts must be >= 1")
        self.queue_size = queue_size
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.rng = rng or random.Random()
        self._stop = threading.Event()
        self.sleep: Callable[[float], object] = sleep or self._stop.wait
        self.stopping = False
        meter = (meter_provider or get_meter_provider()).get_meter("otel_llm.alerts", __version__)
        self._counter = meter.create_counter(
            METRIC_ALERTS_NOTIFICATIONS,
            unit="{notification}",
            description="Alert notification deliveries by notifier and outcome.",
        )
        self._lanes = [_Lane(n, self) for n in notifiers]
        self._started = False
        self._lock = threading.Lock()

    @property
    def notifiers(self) -> list[Notifier]:
        return [lane.notifier for lane in self._lanes]

    def count(self, notifier: Notifier, outcome: str) -> None:
        self._counter.add(1, {"notifier": notifier.name, "outcome": outcome})

    def start(self) -> None:
        with self._lock:
            if self._started or self.stopping:
                return
            self._started = True
        for lane in self._lanes:
            lane.thread.start()

    def submit(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` for every notifier that accepts some of them. Never blocks."""
        if self.stopping:
            return
        for lane in self._lanes:
            batch = [a for a in alerts if lane.notifier.accepts(a)]
            if batch:
                lane.put(batch)

    def resend(self, firing: Callable[[], Sequence[Alert]], now: float) -> None:
        """Re-send the firing alerts to notifiers whose ``resend_interval`` is due.

        ``firing`` is called only when some notifier is due (at most once).
        """
        alerts: Sequence[Alert] | None = None
        for lane in self._lanes:
            interval = lane.notifier.resend_interval
            if interval is None or now - lane.last_resend < interval or self.stopping:
                continue
            lane.last_resend = now
            alerts = firing() if alerts is None else alerts
            batch = [a for a in alerts if lane.notifier.accepts(a)]
            if batch:
                lane.put(batch)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty and idle; False on timeout."""
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            with lane.cond:
                while not lane.idle():
                    left = deadline - time.monotonic()
                    if left <= 0 or not lane.thread.is_alive():
                        return False
                    lane.cond.wait(left)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (one attempt each, no more backoff) within ``timeout``, then
        stop. Safe to call twice and without :meth:`start`."""
        with self._lock:
            if self.stopping:
                return
            self.stopping = True
        self._stop.set()
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            with lane.cond:
                lane.cond.notify_all()
        for lane in self._lanes:
            if lane.thread.is_alive():
                lane.thread.join(max(0.0, deadline - time.monotonic()))
            close = getattr(lane.notifier, "close", None)  # optional for user notifiers
            try:
                if close is not None:
                    close()
            except Exception as exc:  # closing one must not stop closing the others
                logger.warning("otel-llm: closing notifier %r: %r", lane.notifier.name, exc)
