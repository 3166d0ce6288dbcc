"""The one accounting path: every call is recorded in metrics, alerts and the store exactly once.

Fed from two places (DESIGN.md §1): our hooks at the end of each invocation, sampled or not, and
:class:`~otel_llm.processor.LLMSpanProcessor` for spans other instrumentations produced.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.metrics import MeterProvider

from otel_llm.core.pricing import PriceTable
from otel_llm.core.types import CallRecord
from otel_llm.metrics import Instruments

logger = logging.getLogger("otel_llm")


class CallObserver(Protocol):
    """Receives each accounted call (alert evaluator, call store).

    Called synchronously on the thread that ended the call: must not block or raise.
    """

    def observe(self, record: CallRecord) -> None: ...


class CallRecorder(Protocol):
    """Where an accounted call's metrics go: :class:`~otel_llm.metrics.Instruments` (OTel) or
    the gateway's scrape-time :class:`~otel_llm.prometheus_metrics.PrometheusCallMetrics`."""

    def record(self, record: CallRecord) -> None: ...


class Accountant:
    """Records each call once; also remembers which foreign spans our hooks already accounted.

    ``recorder`` replaces the OpenTelemetry instruments for the per-call metrics (the gateway
    passes its Prometheus recorder); our own health counters stay on ``meter_provider``.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        prices: PriceTable | None = None,
        observers: Sequence[CallObserver] = (),
        covered_limit: int = 65536,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.meter_provider = meter_provider
        self.instruments = Instruments(meter_provider)
        self._recorder: CallRecorder = recorder if recorder is not None else self.instruments
        self.prices = prices if prices is not None else PriceTable()
        self._observers = list(observers)
        self._covered: OrderedDict[int, str] = OrderedDict()
        self._covered_limit = covered_limit
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def add_observer(self, observer: CallObserver) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: CallObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def account(self, record: CallRecord) -> None:
        """Record one call in metrics and hand it to the observers. Never raises."""
        try:
            self._recorder.record(record)
        except Exception as exc:  # our own bug must not reach the user's call
            self.internal_error("metrics", exc)
        for observer in self._observers:
            try:
                observer.observe(record)
            except Exception as exc:  # an observer's failure must not stop the others
                self.internal_error(f"observer {type(observer).__name__}", exc)

    # A foreign GenAI span (e.g. OpenLLMetry's) that encloses one of our invocations, or that
    # starts inside one, may describe the same call: when it turns out to be of the same
    # operation, the invocation accounted it and the processor must skip it.
    def cover(self, span_id: int, operation: str) -> None:
        with self._lock:
            self._covered[span_id] = operation
            if len(self._covered) > self._covered_limit:
                self._covered.popitem(last=False)

    def take_covered(self, span_id: int) -> str | None:
        """The operation of the invocation that covers ``span_id`` (and forget it), or None."""
        with self._lock:
            return self._covered.pop(span_id, None)

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Count a failure of ours and log it once per place at WARNING."""
        try:
            self.instruments.internal_errors.add(1, {"where": where})
        finally:
            self.warn_once(where, "otel-llm: internal error in %s: %r", where, exc)

    def invalid(self, what: str, message: str, *args: object) -> None:
        """Count an invalid value passed to us and log it once per kind."""
        self.instruments.invalid_input.add(1, {"field": what})
        self.warn_once("invalid:" + what, message, *args)

    def warn_once(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            if key in self._warned or len(self._warned) > 1024:
                return
            self._warned.add(key)
        logger.warning(message, *args)
