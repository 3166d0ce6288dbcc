"""The circuit breaker of :mod:`otel_llm.resilience`, which re-exports it.

Also holds the meter and span-event helpers the retry policy shares, so that
:mod:`otel_llm.resilience` imports this module and never the other way round.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TypeVar

from opentelemetry import trace
from opentelemetry.metrics import Meter, MeterProvider, get_meter_provider
from opentelemetry.util.types import Attributes

from otel_llm.core.errors import classify_exception
from otel_llm.core.exceptions import ExternalServiceError
from otel_llm.version import __version__

METRIC_CIRCUIT_STATE: Final = "otel_llm.circuit.state"
CIRCUIT_NAME: Final = "otel_llm.circuit.name"
CIRCUIT_STATE: Final = "otel_llm.circuit.state"
CIRCUIT_PREVIOUS: Final = "otel_llm.circuit.state.previous"

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")
# The public module's logger: what users configure for ``otel_llm.resilience`` applies here.
logger = logging.getLogger("otel_llm.resilience")


def _meter(meter_provider: MeterProvider | None) -> Meter:
    # Resolved per object, not cached globally: the global proxy provider forwards to the
    # provider configure() installs later, and tests pass their own.
    return (meter_provider or get_meter_provider()).get_meter("otel_llm", __version__)


def _event(name: str, attributes: Attributes) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


# --- circuit breaker --------------------------------------------------------------------------
class CircuitState(str, enum.Enum):
    """Breaker states; the gauge value is the index (closed 0, half-open 1, open 2)."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE: Final = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class CircuitOpenError(ExternalServiceError):
    """Raised instead of calling a dependency whose breaker is open (503).

    ``service`` (and ``details["service"]``) names the breaker; ``retry_after`` the seconds
    until it lets a trial call through.
    """

    default_code = "CIRCUIT_OPEN"
    default_http_status = 503

    retry_after: float

    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__(f"circuit {service!r} is open", service=service,
                         details={"retry_after": round(retry_after, 3)})
        self.retry_after = retry_after


def _counts_as_failure(exc: BaseException) -> bool:
    # The caller's own mistakes (bad request, bad key, refused) say nothing about the
    # dependency's health; everything else does.
    return classify_exception(exc).category not in {
        "validation", "authentication", "authorization", "business_logic"}


class _Permit:
    __slots__ = ("generation", "trial")

    def __init__(self, generation: int, trial: bool) -> None:
        self.generation, self.trial = generation, trial


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures; open → half-open once
    ``recovery_timeout`` seconds passed (by ``clock``); half-open lets ``half_open_max_calls``
    trial calls through at a time: ``success_threshold`` successes close it, one failure
    opens it again. While open (or half-open and busy) calls raise :class:`CircuitOpenError`
    without running.

    ``failure_on`` decides which exceptions count (default: all but the caller's own
    validation/authentication/authorization/business errors); others pass through without
    changing the state. A call that started before a state change does not count after it.
    Thread-safe; the same object serves sync and async callers. Each state change is a span
    event ``otel_llm.circuit.state_change`` and sets ``otel_llm.circuit.state``; a refused call
    is a span event ``otel_llm.circuit.rejected``.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        failure_on: Callable[[BaseException], bool] = _counts_as_failure,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if min(failure_threshold, half_open_max_calls, success_threshold) < 1 \
                or recovery_timeout < 0:
            raise ValueError("thresholds and half_open_max_calls must be >= 1, "
                             "recovery_timeout >= 0")
        self.name = name
        self.failure_threshold, self.recovery_timeout = failure_threshold, recovery_timeout
        self.half_open_max_calls, self.success_threshold = half_open_max_calls, success_threshold
        self._failure_on, self._clock = failure_on, clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._failures = self._successes = self._in_flight = 0
        self._opened_at = 0.0
        self._gauge = _meter(meter_provider).create_gauge(
            METRIC_CIRCUIT_STATE, unit="1",
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open.")
        self._gauge.set(0, {CIRCUIT_NAME: name})

    @property
    def state(self) -> CircuitState:
        """The state now (an open breaker past its recovery timeout reads half-open)."""
        with self._lock:
            changes = self._advance()
        self._announce(changes)
        return self._state

    def reset(self) -> None:
        """Close the breaker and forget failures."""
        with self._lock:
            changes = self._move(CircuitState.CLOSED) if self._state != CircuitState.CLOSED else []
            self._failures = 0
        self._announce(changes)

    # --- state machine (called under the lock; returns changes to announce outside it) ---
    def _move(self, to: CircuitState) -> list[tuple[CircuitState, CircuitState]]:
        before, self._state = self._state, to
        self._generation += 1
        self._failures = self._successes = self._in_flight = 0
        if to == CircuitState.OPEN:
            self._opened_at = self._clock()
        return [(before, to)]

    def _advance(self) -> list[tuple[CircuitState, CircuitState]]:
        if self._state == CircuitState.OPEN and \
                self._clock() - self._opened_at >= self.recovery_timeout:
            return self._move(CircuitState.HALF_OPEN)
        return []

    def _acquire(self) -> _Permit:
        with self._lock:
            changes = self._advance()
            permit = None
            if self._state == CircuitState.CLOSED:
                permit = _Permit(self._generation, trial=False)
            elif self._state == CircuitState.HALF_OPEN and \
                    self._in_flight < self.half_open_max_calls:
                self._in_flight += 1
                permit = _Permit(self._generation, trial=True)
            wait = max(0.0, self._opened_at + self.recovery_timeout - self._clock())
        self._announce(changes)
        if permit is None:
            _event("otel_llm.circuit.rejected", {CIRCUIT_NAME: self.name,
                                                  CIRCUIT_STATE: self._state.value})
            raise CircuitOpenError(self.name, wait)
        return permit

    def _release(self, permit: _Permit, exc: BaseException | None) -> None:
        # Three outcomes: success (exc None), failure (counted by failure_on), neutral (an
        # uncounted exception or a cancellation: only frees a half-open slot).
        failed = isinstance(exc, Exception) and self._failure_on(exc)
        with self._lock:
            changes: list[tuple[CircuitState, CircuitState]] = []
            if permit.generation == self._generation:  # stale outcomes do not count
                if permit.trial:
                    self._in_flight -= 1
                if failed:
                    self._failures += 1
                    if self._state == CircuitState.HALF_OPEN or \
                            self._failures >= self.failure_threshold:
                        changes = self._move(CircuitState.OPEN)
                elif exc is None:
                    self._failures = 0
                    if self._state == CircuitState.HALF_OPEN:
                        self._successes += 1
                        if self._successes >= self.success_threshold:
                            changes = self._move(CircuitState.CLOSED)
        self._announce(changes)

    def _announce(self, changes: list[tuple[CircuitState, CircuitState]]) -> None:
        for before, after in changes:
            _event("otel_llm.circuit.state_change", {
                CIRCUIT_NAME: self.name, CIRCUIT_PREVIOUS: before.value,
                CIRCUIT_STATE: after.value})
            self._gauge.set(_GAUGE[after], {CIRCUIT_NAME: self.name})
            level = logging.WARNING if after == CircuitState.OPEN else logging.INFO
            logger.log(level, "circuit %s: %s -> %s", self.name, before.value, after.value)

    # --- call forms ---
    def call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Call ``fn`` through the breaker; raises :class:`CircuitOpenError` when open."""
        with self.guard():
            return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[_T]], /, *args: Any, **kwargs: Any) -> _T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        async with self.guard():
            return await fn(*args, **kwargs)

    def guard(self) -> _Guard:
        """A fresh context manager for one protected block: ``with b.guard():`` or
        ``async with b.guard():``. Entering raises :class:`CircuitOpenError` when open."""
        return _Guard(self)

    def __call__(self, fn: _F) -> _F:
        """Decorate a function or coroutine function."""
        return decorate(self.call, self.acall, fn)


class _Guard:
    """One protected block; holds its permit so concurrent blocks do not mix outcomes."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: _Permit | None = None

    def __enter__(self) -> _Guard:
        self._permit = self._breaker._acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._permit is not None:
            self._breaker._release(self._permit, exc)
            self._permit = None

    async def __aenter__(self) -> _Guard:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def decorate(call: Callable[..., Any], acall: Callable[..., Any], fn: _F) -> _F:
    """``fn`` wrapped to run through ``call(fn, ...)``, or ``await acall(fn, ...)`` when it is a
    coroutine function (the retry policy and the breaker decorate the same way)."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)
        return async_wrapper  # type: ignore[return-value]  # same signature as fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)
    return wrapper  # type: ignore[return-value]  # same signature as fn
