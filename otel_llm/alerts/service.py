"""In-process alerting: the evaluator fed by the accountant, ticked on a daemon thread, with
notifications handed to the notifier worker. ``Telemetry.alerts`` is an :class:`AlertService`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider

from otel_llm import semconv as sc
from otel_llm.alerts.config import AlertsConfig, notifier_objects
from otel_llm.alerts.evaluator import Alert, Evaluator
from otel_llm.alerts.worker import NotifierWorker
from otel_llm.core.types import CallRecord
from otel_llm.version import __version__

__all__ = ["AlertService"]

logger = logging.getLogger("otel_llm")


class AlertService:
    """Evaluates alert rules over this process's calls and delivers notifications.

    :meth:`observe` is the :class:`~otel_llm.accounting.CallObserver` hook (cheap, never
    raises). After :meth:`start`, a daemon thread calls :meth:`tick` every ``interval``
    seconds; :meth:`shutdown` stops it, then lets the worker deliver what is queued. The gauge
    ``otel_llm.alerts.firing{rule, severity}`` reports the firing alerts of every rule.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        worker: NotifierWorker | None = None,
        *,
        interval: float = 1.0,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.evaluator = evaluator
        self.worker = worker
        self._interval = interval
        self._clock = clock
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._shut = False
        self._warned = False
        meter = (meter_provider or get_meter_provider()).get_meter("otel_llm.alerts", __version__)
        meter.create_observable_gauge(
            sc.METRIC_ALERTS_FIRING,
            callbacks=[self._firing],
            unit="{alert}",
            description="Alerts currently firing, by rule and severity.",
        )

    @classmethod
    def from_config(
        cls,
        config: AlertsConfig,
        *,
        meter_provider: MeterProvider | None = None,
        service_name: str | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> AlertService:
        """The service ``configure()`` builds: rules, notifiers and settings from ``config``."""
        evaluator = Evaluator(
            config.rules, jaeger_url=config.jaeger_url, default_service=service_name
        )
        notifiers = notifier_objects(config)
        worker = None
        if notifiers:
            d = config.delivery
            worker = NotifierWorker(
                notifiers,
                meter_provider=meter_provider,
                queue_size=d.queue_size,
                max_attempts=d.max_attempts,
                initial_backoff=d.initial_backoff,
                max_backoff=d.max_backoff,
            )
        return cls(evaluator, worker, interval=config.evaluation_interval,
                   meter_provider=meter_provider, on_error=on_error)

    # -- the CallObserver contract -----------------------------------------------------------
    def observe(self, record: CallRecord) -> None:
        """Count one call into the rules' windows. Called on the thread that ended the call."""
        self.evaluator.observe(record)

    # -- reading -----------------------------------------------------------------------------
    def active(self) -> list[Alert]:
        """Pending and firing alerts."""
        return self.evaluator.active()

    def history(self) -> list[Alert]:
        """Resolved alerts, oldest first (the last 1000)."""
        return self.evaluator.history()

    # -- running -----------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[Alert]:
        """Evaluate now and queue the resulting notifications (the thread calls this)."""
        at = self._clock() if now is None else now
        alerts = self.evaluator.tick(at)
        if self.worker is not None:
            if alerts:
                self.worker.submit(alerts)
            self.worker.resend(self.evaluator.firing, at)
        return alerts

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._shut:
                return
            if self.worker is not None:
                self.worker.start()
            self._thread = threading.Thread(target=self._run, name="otel-llm-alerts",
                                            daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued notifications are delivered (or given up on)."""
        return self.worker.flush(timeout) if self.worker is not None else True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop ticking and delivering. Idempotent; safe without :meth:`start`."""
        with self._lock:
            if self._shut:
                return
            self._shut = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self.worker is not None:
            self.worker.shutdown(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception as exc:  # a bug of ours: keep ticking, say so once
                self._report(exc)

    def _report(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error("alerts.tick", exc)
        elif not self._warned:
            self._warned = True
            logger.warning("otel-llm: internal error in alert evaluation: %r", exc)

    def _firing(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"rule": rule, "severity": severity})
            for (rule, severity), count in self.evaluator.firing_counts().items()
        ]
