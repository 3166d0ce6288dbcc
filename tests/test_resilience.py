from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan

import otel_llm
from otel_llm import semconv as sc
from otel_llm.resilience import (
    METRIC_CIRCUIT_STATE,
    METRIC_RETRIES,
    CircuitBreaker,
    CircuitOpenError,
    RetryPolicy,
    is_transient,
    retry,
)
from tests.conftest import Harness


class FakeClock:
    """Time that moves only when something sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Flaky:
    """Fails with the given exceptions in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def run_async(self) -> str:
        await asyncio.sleep(0)
        return self()


def policy(clock: FakeClock, harness: Harness, **options: Any) -> RetryPolicy:
    options = {"attempts": 3, "initial_delay": 0.5, "jitter": 0.0, **options}
    return RetryPolicy("llm", sleep=clock.sleep, async_sleep=clock.async_sleep,
                       meter_provider=harness.meter_provider, **options)


def events(span: ReadableSpan, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events if e.name.startswith(prefix)]


def in_span(harness: Harness, fn: Callable[[], Any]) -> tuple[Any, ReadableSpan]:
    tracer = harness.tracer_provider.get_tracer("test")
    result: Any = None
    with tracer.start_as_current_span("caller"):
        try:
            result = fn()
        except Exception as exc:
            result = exc
    [span] = [s for s in harness.spans() if s.name == "caller"]
    return result, span


# --- retry ------------------------------------------------------------------------------------
def test_transient_failures_are_retried_with_exponential_backoff(harness: Harness) -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError("reset"), TimeoutError("slow"))
    result, span = in_span(harness, lambda: policy(clock, harness).call(flaky))
    assert result == "ok" and flaky.calls == 3
    assert clock.sleeps == [0.5, 1.0]
    assert events(span, "otel_llm.retry") == [
        ("otel_llm.retry", {"otel_llm.retry.name": "llm", "otel_llm.retry.attempt": 1,
                            "otel_llm.retry.delay_s": 0.5, sc.ERROR_TYPE: "connection",
                            "exception.type": "ConnectionError"}),
        ("otel_llm.retry", {"otel_llm.retry.name": "llm", "otel_llm.retry.attempt": 2,
                            "otel_llm.retry.delay_s": 1.0, sc.ERROR_TYPE: "timeout",
                            "exception.type": "TimeoutError"}),
        ("otel_llm.retry.succeeded", {"otel_llm.retry.name": "llm",
                                      "otel_llm.retry.attempt": 3}),
    ]
    counts = {p.attributes[sc.ERROR_TYPE]: p.value for p in harness.points(METRIC_RETRIES)}
    assert counts == {"connection": 1, "timeout": 1}


def test_gives_up_after_the_last_attempt_with_the_original_exception(harness: Harness) -> None:
    clock = FakeClock()
    last = otel_llm.LLMServiceError("still down")
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"), last, ConnectionError("unused"))
    result, span = in_span(harness, lambda: policy(clock, harness).call(flaky))
    assert result is last and flaky.calls == 3
    assert [name for name, _ in events(span, "otel_llm.retry")] == [
        "otel_llm.retry", "otel_llm.retry", "otel_llm.retry.exhausted"]
    assert events(span, "otel_llm.retry.exhausted")[0][1][sc.ERROR_TYPE] == "server_error"
    assert sum(p.value for p in harness.points(METRIC_RETRIES)) == 2


def test_non_transient_errors_are_raised_at_once(harness: Harness) -> None:
    clock = FakeClock()
    for error in (ValueError("bad"), otel_llm.ValidationError("bad"),
                  otel_llm.AuthenticationError("key"), CircuitOpenError("x", 1.0)):
        flaky = Flaky(error)
        with pytest.raises(type(error)):
            policy(clock, harness).call(flaky)
        assert flaky.calls == 1
    assert clock.sleeps == []


def test_is_transient_follows_the_error_taxonomy() -> None:
    assert is_transient(otel_llm.RateLimitError("429"))
    assert is_transient(ConnectionResetError())
    assert is_transient(otel_llm.ExternalServiceError("502"))
    assert not is_transient(KeyError("k"))
    assert not is_transient(CircuitOpenError("svc", 3.0))


def test_retry_on_classes_or_a_predicate(harness: Harness) -> None:
    clock = FakeClock()
    flaky = Flaky(KeyError("a"), KeyError("b"))
    assert policy(clock, harness, retry_on=KeyError).call(flaky) == "ok"
    flaky = Flaky(KeyError("a"))
    assert policy(clock, harness, retry_on=(IndexError, KeyError)).call(flaky) == "ok"
    flaky = Flaky(RuntimeError("retry me"), RuntimeError("not me"))
    with pytest.raises(RuntimeError, match="not me"):
        policy(clock, harness, retry_on=lambda e: "retry" in str(e)).call(flaky)


def test_delays_grow_cap_and_jitter_stays_within_bounds(harness: Harness) -> None:
    exact = RetryPolicy(initial_delay=1, max_delay=10, multiplier=3, jitter=0,
                        meter_provider=harness.meter_provider)
    assert [exact.delay(n) for n in range(1, 6)] == [1, 3, 9, 10, 10]
    assert exact.delay(10_000) == 10
    huge = RetryPolicy(initial_delay=1, max_delay=60, multiplier=1e300, jitter=0,
                       meter_provider=harness.meter_provider)
    assert huge.delay(50) == 60  # no OverflowError
    jittered = RetryPolicy(initial_delay=2, max_delay=60, jitter=0.5, rng=random.Random(7),
                           meter_provider=harness.meter_provider)
    for attempt in range(1, 8):
        base = min(60, 2 * 2 ** (attempt - 1))
        samples = {jittered.delay(attempt) for _ in range(50)}
        assert all(base * 0.5 <= s <= base for s in samples) and len(samples) > 1


def test_retry_after_is_honoured_up_to_the_cap(harness: Harness) -> None:
    clock = FakeClock()
    flaky = Flaky(otel_llm.RateLimitError("slow down", retry_after=7),
                  otel_llm.RateLimitError("slow down", retry_after=500))
    assert policy(clock, harness, max_delay=30).call(flaky) == "ok"
    assert clock.sleeps == [7.0, 30.0]


def test_invalid_settings_fail_early(harness: Harness) -> None:
    for options in ({"attempts": 0}, {"attempts": 1.5}, {"initial_delay": -1},
                    {"initial_delay": 5, "max_delay": 1}, {"multiplier": 0.5}, {"jitter": 2}):
        with pytest.raises(ValueError):
            RetryPolicy(meter_provider=harness.meter_provider, **options)


def test_decorator_and_attempt_iteration_forms(harness: Harness) -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError("x"))

    @retry("decorated", attempts=2, jitter=0, sleep=clock.sleep,
           meter_provider=harness.meter_provider)
    def call(value: int) -> tuple[str, int]:
        return flaky(), value

    assert call(5) == ("ok", 5)
    assert call.__name__ == "call"
    flaky = Flaky(TimeoutError("y"))
    for attempt in policy(clock, harness).retrying():
        with attempt:
            flaky()
    assert flaky.calls == 2


def test_async_retry_call_decorator_and_iteration(harness: Harness) -> None:
    clock = FakeClock()
    tracer = harness.tracer_provider.get_tracer("test")

    async def main() -> None:
        flaky = Flaky(ConnectionError("a"), ConnectionError("b"))
        with tracer.start_as_current_span("caller"):
            assert await policy(clock, harness).acall(flaky.run_async) == "ok"

        decorated_flaky = Flaky(TimeoutError("t"))

        @policy(clock, harness)
        async def decorated(x: int) -> str:
            return f"{await decorated_flaky.run_async()}{x}"

        assert await decorated(1) == "ok1"
        iterated = Flaky(ConnectionError("c"))
        async for attempt in policy(clock, harness).async_retrying():
            with attempt:
                await iterated.run_async()
        assert iterated.calls == 2

    asyncio.run(main())
    assert clock.sleeps == [0.5, 1.0, 0.5, 0.5]
    [span] = harness.spans()
    assert [e.name for e in span.events] == [
        "otel_llm.retry", "otel_llm.retry", "otel_llm.retry.succeeded"]


# --- circuit breaker --------------------------------------------------------------------------
def breaker(clock: FakeClock, harness: Harness, **options: Any) -> CircuitBreaker:
    options = {"failure_threshold": 3, "recovery_timeout": 30.0, **options}
    return CircuitBreaker("vector-db", clock=clock, meter_provider=harness.meter_provider,
                          **options)


def state(b: CircuitBreaker) -> str:
    """The state now (a function: the property changes between reads)."""
    return b.state.value


def fail() -> None:
    raise ConnectionError("down")


def gauge(harness: Harness) -> float:
    [point] = [p for p in harness.points(METRIC_CIRCUIT_STATE)
               if p.attributes["otel_llm.circuit.name"] == "vector-db"]
    return float(point.value)


def test_breaker_opens_after_consecutive_failures_and_refuses_calls(harness: Harness) -> None:
    clock, calls = FakeClock(), Flaky()
    b = breaker(clock, harness)
    assert gauge(harness) == 0
    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(fail)
    b.call(calls)  # a success resets the consecutive count
    for _ in range(3):
        with pytest.raises(ConnectionError):
            b.call(fail)
    assert state(b) == "open" and gauge(harness) == 2
    clock.now += 10
    with pytest.raises(CircuitOpenError) as refused:
        b.call(calls)
    assert calls.calls == 1  # not called while open
    error = refused.value
    assert isinstance(error, otel_llm.ExternalServiceError)
    assert error.service == "vector-db" and error.details["service"] == "vector-db"
    assert error.retry_after == pytest.approx(20.0) and error.http_status == 503
    assert error.to_dict()["category"] == "external_service"


def test_half_open_trial_success_closes_and_failure_reopens(harness: Harness) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=1)
    with pytest.raises(ConnectionError):
        b.call(fail)
    clock.now += 29.9
    assert state(b) == "open"
    clock.now += 0.1
    assert state(b) == "half_open" and gauge(harness) == 1
    with pytest.raises(ConnectionError):
        b.call(fail)  # the trial fails: open again, for a full recovery timeout
    assert state(b) == "open"
    clock.now += 29
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    clock.now += 1
    assert b.call(lambda: "fine") == "fine"
    assert state(b) == "closed" and gauge(harness) == 0


def test_half_open_lets_a_bounded_number_of_trials_through(harness: Harness) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=1, half_open_max_calls=1, success_threshold=2)
    with pytest.raises(ConnectionError):
        b.call(fail)
    clock.now += 30
    with b.guard(), pytest.raises(CircuitOpenError):  # one trial in flight, a second refused
        b.call(lambda: None)
    assert state(b) == "half_open"  # one success of two needed
    b.call(lambda: None)
    assert state(b) == "closed"


def test_callers_own_errors_do_not_open_the_breaker(harness: Harness) -> None:
    b = breaker(FakeClock(), harness, failure_threshold=1)
    for error in (otel_llm.ValidationError("bad"), otel_llm.AuthorizationError("no"),
                  ValueError("bad arg")):
        with pytest.raises(type(error)):
            b.call(Flaky(error))
    assert state(b) == "closed"
    custom = breaker(FakeClock(), harness, failure_threshold=1,
                     failure_on=lambda e: isinstance(e, ValueError))
    with pytest.raises(ValueError):
        custom.call(Flaky(ValueError("counted now")))
    assert state(custom) == "open"


def test_a_call_that_started_before_a_state_change_does_not_count_after_it(
    harness: Harness,
) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=1)
    slow = b.guard().__enter__()  # started while closed
    with pytest.raises(ConnectionError):
        b.call(fail)  # another call opens the breaker
    clock.now += 30
    slow.__exit__(None, None, None)  # its late success must not close the half-open breaker
    assert state(b) == "half_open"


def test_state_changes_are_span_events(harness: Harness) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=1)

    def scenario() -> None:
        with pytest.raises(ConnectionError):
            b.call(fail)
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)
        clock.now += 30
        b.call(lambda: None)

    _, span = in_span(harness, scenario)
    changes = [(a["otel_llm.circuit.state.previous"], a["otel_llm.circuit.state"])
               for name, a in events(span, "otel_llm.circuit") if name.endswith("state_change")]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert [name for name, _ in events(span, "otel_llm.circuit.rejected")] == [
        "otel_llm.circuit.rejected"]


def test_reset_closes(harness: Harness) -> None:
    b = breaker(FakeClock(), harness, failure_threshold=1)
    with pytest.raises(ConnectionError):
        b.call(fail)
    b.reset()
    assert state(b) == "closed" and gauge(harness) == 0
    with pytest.raises(ValueError):
        breaker(FakeClock(), harness, failure_threshold=0)


def test_async_breaker_forms_and_cancellation(harness: Harness) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=2)

    @b
    async def flaky_call(ok: bool) -> str:
        await asyncio.sleep(0)
        if not ok:
            raise ConnectionError("down")
        return "ok"

    async def main() -> None:
        assert await flaky_call(True) == "ok"
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await flaky_call(False)
        with pytest.raises(CircuitOpenError):
            await b.acall(flaky_call, True)
        clock.now += 30
        # A cancelled trial is no verdict: it frees the slot, the breaker stays half-open.
        with pytest.raises(asyncio.CancelledError):
            async with b.guard():
                raise asyncio.CancelledError
        assert state(b) == "half_open"
        async with b.guard():
            await asyncio.sleep(0)
        assert state(b) == "closed"

    asyncio.run(main())


def test_retry_around_a_breaker_stops_at_the_open_circuit(harness: Harness) -> None:
    clock = FakeClock()
    b = breaker(clock, harness, failure_threshold=2)
    flaky = Flaky(*[ConnectionError(str(i)) for i in range(10)])
    guarded = policy(clock, harness, attempts=5)(b(flaky))
    with pytest.raises(CircuitOpenError):
        guarded()
    assert flaky.calls == 2  # third attempt refused by the breaker, not retried further


# --- the state machine against a reference model ----------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["ok", "fail", "wait", "user_error"]), max_size=60),
       st.integers(1, 4))
def test_breaker_matches_a_reference_model(ops: list[str], threshold: int) -> None:
    clock = FakeClock()
    b = CircuitBreaker("model", failure_threshold=threshold, recovery_timeout=10, clock=clock)
    state, failures, opened_at = "closed", 0, 0.0
    for op in ops:
        if op == "wait":
            clock.now += 6
            continue
        if state == "open" and clock.now - opened_at >= 10:
            state = "half_open"
        if state == "open":
            with pytest.raises(CircuitOpenError):
                b.call(lambda: None)
            continue
        error = {"ok": None, "fail": ConnectionError(), "user_error": ValueError()}[op]
        if error is None:
            b.call(lambda: None)
        else:
            with pytest.raises(type(error)):
                b.call(Flaky(error))
        if op == "ok":
            failures = 0
            state = "closed"
        elif op == "fail":
            failures += 1
            if state == "half_open" or failures >= threshold:
                state, failures, opened_at = "open", 0, clock.now
        assert b.state.value == state
