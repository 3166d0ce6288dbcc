"""Retry with exponential backoff and jitter, and a circuit breaker, both instrumented.

Each retry, give-up and breaker state change is a span event on the *current* span (the call
being protected shows why it was slow or refused) and a metric: ``otel_llm.retries`` (counter,
by ``otel_llm.retry.name`` and ``error.type``) and ``otel_llm.circuit.state`` (gauge by
``otel_llm.circuit.name``: 0 closed, 1 half-open, 2 open). Retries are built on ``tenacity``;
the breaker is a small state machine over an injected clock. Both work sync and async, as
decorators and as call / context-manager forms. Compose them as ``retry(breaker(fn))``: an open
breaker's :class:`CircuitOpenError` is not retried by default.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import tenacity
from opentelemetry.metrics import MeterProvider

from otel_llm import semconv as sc
from otel_llm._circuit import CIRCUIT_NAME as CIRCUIT_NAME
from otel_llm._circuit import CIRCUIT_PREVIOUS as CIRCUIT_PREVIOUS
from otel_llm._circuit import CIRCUIT_STATE as CIRCUIT_STATE
from otel_llm._circuit import (
    METRIC_CIRCUIT_STATE,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    _event,
    _meter,
    decorate,
)
from otel_llm.core.errors import classify_exception

__all__ = [
    "RetryPolicy",
    "retry",
    "is_transient",
    "CircuitBreaker",
    "CircuitState",
    "CircuitOpenError",
    "METRIC_RETRIES",
    "METRIC_CIRCUIT_STATE",
]

METRIC_RETRIES: Final = "otel_llm.retries"
RETRY_NAME: Final = "otel_llm.retry.name"
RETRY_ATTEMPT: Final = "otel_llm.retry.attempt"
RETRY_DELAY: Final = "otel_llm.retry.delay_s"

_TRANSIENT: Final = frozenset({"rate_limit", "timeout", "connection", "server_error", "overloaded"})
_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: rate limits, timeouts, connection errors, 5xx and
    overload (by :func:`otel_llm.core.errors.classify_exception`), never an open circuit."""
    if isinstance(exc, CircuitOpenError):
        return False
    return classify_exception(exc).type in _TRANSIENT


# --- retry ------------------------------------------------------------------------------------
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class RetryPolicy:
    """Retry a call on transient errors with exponential backoff and jitter.

    Attempt ``n`` (1-based) that failed waits ``min(max_delay, initial_delay *
    multiplier**(n-1))``, reduced by up to ``jitter`` (a fraction: 0.5 → between 50 % and
    100 % of it), but at least an error's ``retry_after`` (capped at ``max_delay``). After
    ``attempts`` attempts the last exception is re-raised unchanged; an exception that
    ``retry_on`` rejects (default :func:`is_transient`) is raised at once. ``sleep`` /
    ``async_sleep`` and ``rng`` are injectable for tests. Raises ``ValueError`` on bad settings.

    Span events on the current span: ``otel_llm.retry`` before each retry (attempt, delay,
    ``error.type``, ``exception.type``), ``otel_llm.retry.exhausted`` when giving up,
    ``otel_llm.retry.succeeded`` when a retried call succeeds. Each retry adds 1 to
    ``otel_llm.retries``.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        attempts: int = 3,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        retry_on: RetryOn | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError("attempts must be an integer >= 1")
        if not (0 <= initial_delay <= max_delay) or multiplier < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 <= initial_delay <= max_delay, multiplier >= 1, "
                             "0 <= jitter <= 1")
        self.name = name
        self.attempts = attempts
        self.initial_delay, self.max_delay = float(initial_delay), float(max_delay)
        self.multiplier, self.jitter = float(multiplier), float(jitter)
        self._should_retry = _predicate(retry_on)
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._rng = rng or random.Random()
        self._retries = _meter(meter_provider).create_counter(
            METRIC_RETRIES, unit="{retry}", description="Retries of failed calls.")

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), jitter included."""
        base = self.initial_delay
        for _ in range(attempt - 1):  # multiply up to the cap: multiplier**n could overflow
            if base >= self.max_delay:
                break
            base *= self.multiplier
        wait = min(self.max_delay, base) * (1 - self.jitter * self._rng.random())
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) \
                and retry_after > 0:
            wait = max(wait, min(float(retry_after), self.max_delay))
        return wait

    # tenacity callbacks: every instrumentation point of a retry loop in one place
    def _retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if not outcome.failed:
            if state.attempt_number > 1:
                _event("otel_llm.retry.succeeded",
                       {RETRY_NAME: self.name, RETRY_ATTEMPT: state.attempt_number})
            return False
        exc = outcome.exception()
        return exc is not None and self._should_retry(exc)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.delay(state.attempt_number, exc)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number < self.attempts:
            return False
        exc = state.outcome.exception() if state.outcome is not None else None
        _event("otel_llm.retry.exhausted", {
            RETRY_NAME: self.name, RETRY_ATTEMPT: state.attempt_number,
            sc.ERROR_TYPE: classify_exception(exc).type if exc else "_OTHER",
            "exception.type": type(exc).__name__,
        })
        return True

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        error_type = classify_exception(exc).type if exc is not None else "_OTHER"
        _event("otel_llm.retry", {
            RETRY_NAME: self.name, RETRY_ATTEMPT: state.attempt_number,
            RETRY_DELAY: state.upcoming_sleep, sc.ERROR_TYPE: error_type,
            "exception.type": type(exc).__name__,
        })
        self._retries.add(1, {RETRY_NAME: self.name, sc.ERROR_TYPE: error_type})

    def _options(self) -> dict[str, Any]:
        return {"stop": self._stop, "wait": self._wait, "retry": self._retry,
                "before_sleep": self._before_sleep, "reraise": True}

    def retrying(self) -> tenacity.Retrying:
        """A configured ``tenacity.Retrying``: ``for attempt in p.retrying(): with attempt: …``"""
        return tenacity.Retrying(sleep=self._sleep, **self._options())

    def async_retrying(self) -> tenacity.AsyncRetrying:
        """A configured ``tenacity.AsyncRetrying`` for ``async for attempt in …``."""
        options = self._options()
        if self._async_sleep is not None:
            options["sleep"] = self._async_sleep
        return tenacity.AsyncRetrying(**options)

    def call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Call ``fn(*args, **kwargs)`` with retries."""
        return self.retrying()(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[_T]], /, *args: Any, **kwargs: Any) -> _T:
        """Await ``fn(*args, **kwargs)`` with retries (a new coroutine per attempt)."""
        return await self.async_retrying()(fn, *args, **kwargs)

    def __call__(self, fn: _F) -> _F:
        """Decorate a function or coroutine function."""
        return decorate(self.call, self.acall, fn)


def retry(name: str = "default", **options: Any) -> RetryPolicy:
    """``@retry("embeddings", attempts=4)``: a :class:`RetryPolicy` used as a decorator."""
    return RetryPolicy(name, **options)


def _predicate(retry_on: RetryOn | None) -> Callable[[BaseException], bool]:
    if retry_on is None:
        return is_transient
    if isinstance(retry_on, type | tuple):
        classes = retry_on
        return lambda exc: isinstance(exc, classes)
    return retry_on
