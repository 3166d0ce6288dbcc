from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm.alerts import Alert, Evaluator, Rule
from tests.alert_fixtures import RATE_LIMIT, SERVER_ERROR, FakeClock, record


def rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "R", "metric": "error_rate", "op": ">", "threshold": 0.5,
                            "window": "5m", "cooldown": "1h"}
    return Rule.model_validate({**base, **fields})


def feed(ev: Evaluator, clock: FakeClock, errors: int = 0, ok: int = 0, **kw: Any) -> None:
    for i in range(errors):
        ev.observe(record(clock.t, error=SERVER_ERROR, trace_id=f"{i + 1:032x}", **kw))
    for _ in range(ok):
        ev.observe(record(clock.t, **kw))


def states(alerts: list[Alert]) -> list[str]:
    return [a.state for a in alerts]


def test_for_delays_firing_exactly() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(**{"for": "2m"})], clock=clock)
    start = clock.t
    feed(ev, clock, errors=10)
    assert ev.tick(start) == []
    assert states(ev.active()) == ["pending"]
    assert ev.tick(start + 119.999) == []
    fired = ev.tick(start + 120)
    assert states(fired) == ["firing"]
    assert fired[0].active_since == start and fired[0].fired_at == start + 120
    assert states(ev.active()) == ["firing"]


def test_pending_that_clears_never_notifies() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(**{"for": "2m"})], clock=clock)
    feed(ev, clock, errors=1)
    assert ev.tick() == []
    feed(ev, clock, ok=5)  # rate falls to 1/6
    assert ev.tick(clock.advance(60)) == []
    assert ev.active() == [] and ev.history() == []


def test_cooldown_suppresses_repeats() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(cooldown="10m")], clock=clock)
    sent = []
    for _ in range(51):  # 25 minutes, errors all along
        feed(ev, clock, errors=1)
        sent += [(a.state, a.at - 1_700_000_000.0) for a in ev.tick()]
        clock.advance(30)
    assert sent == [("firing", 0.0), ("firing", 600.0), ("firing", 1200.0)]


def test_resolve_is_notified_once_and_kept_in_history() -> None:
    clock = FakeClock()
    ev = Evaluator([rule()], clock=clock)
    feed(ev, clock, errors=3)
    assert states(ev.tick()) == ["firing"]
    feed(ev, clock, ok=10)
    resolved = ev.tick(clock.advance(1))
    assert states(resolved) == ["resolved"]
    assert resolved[0].resolved_at == clock.t and resolved[0].trace_ids  # the breaching calls
    for _ in range(5):
        assert ev.tick(clock.advance(10)) == []
    assert [a.state for a in ev.history()] == ["resolved"]
    assert ev.active() == []


def test_alerts_resolve_when_traffic_stops() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(window="1m")], clock=clock)
    feed(ev, clock, errors=5)
    assert states(ev.tick()) == ["firing"]
    assert ev.tick(clock.advance(30)) == []
    assert states(ev.tick(clock.advance(61))) == ["resolved"]  # no data: nothing breaches


def test_min_calls_guards_error_rate_on_tiny_samples() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(min_calls=10)], clock=clock)
    feed(ev, clock, errors=3)  # 100% of 3 calls
    assert ev.tick() == []
    feed(ev, clock, errors=3, ok=4)  # 6 of 10
    fired = ev.tick(clock.advance(1))
    assert states(fired) == ["firing"] and fired[0].value == pytest.approx(0.6)


def test_group_by_separates_models() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(group_by=["provider", "model"])], clock=clock)
    feed(ev, clock, errors=5, model="gpt-4o")
    feed(ev, clock, ok=5, model="gpt-4o-mini")
    feed(ev, clock, ok=1, errors=1, model="claude", provider="anthropic")
    fired = ev.tick()
    assert [a.labels for a in fired] == [
        {"alertname": "R", "severity": "warning", "provider": "openai", "model": "gpt-4o"}
    ]


def test_where_filters_calls_and_error_categories() -> None:
    clock = FakeClock()
    only_rate_limits = rule(name="RL", where={"error_category": "resource_error",
                                              "operation": "chat"}, threshold=0.25)
    ev = Evaluator([only_rate_limits], clock=clock)
    feed(ev, clock, errors=4, ok=6)  # server errors do not count
    assert ev.tick() == []
    for _ in range(4):
        ev.observe(record(clock.t, error=RATE_LIMIT))
    for _ in range(50):  # another operation is not in the denominator
        ev.observe(record(clock.t, operation="embeddings"))
    (alert,) = ev.tick(clock.advance(1))
    assert alert.value == pytest.approx(4 / 14)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("latency_avg", ["slowest"]), ("cost_usd", ["priciest"]), ("error_rate", ["failed"])],
)
def test_samples_are_the_offending_calls(metric: str, expected: list[str]) -> None:
    clock = FakeClock()
    ev = Evaluator([rule(metric=metric, threshold=0.0001)], clock=clock, samples=1,
                   jaeger_url="http://jaeger:16686/")
    ev.observe(record(clock.t, duration=0.1, cost=0.01, trace_id="ordinary"))
    ev.observe(record(clock.t, duration=9.0, trace_id="slowest"))
    ev.observe(record(clock.t, cost=5.0, trace_id="priciest"))
    ev.observe(record(clock.t, error=SERVER_ERROR, trace_id="failed"))
    (alert,) = ev.tick()
    assert list(alert.trace_ids) == expected
    assert alert.trace_links == (f"http://jaeger:16686/trace/{expected[0]}",)


def test_latency_p95_is_close_to_exact() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(metric="latency_p95", threshold=0)], clock=clock)
    rng = random.Random(7)
    durations = [rng.lognormvariate(0, 1) for _ in range(2000)]
    for d in durations:
        ev.observe(record(clock.t, duration=d))
    (alert,) = ev.tick()
    exact = sorted(durations)[int(0.95 * len(durations)) - 1]
    assert alert.value == pytest.approx(exact, rel=0.03)


def test_sums_and_annotations() -> None:
    clock = FakeClock()
    budget = rule(name="Budget", metric="cost_usd", threshold=1, window="1h",
                  labels={"team": "ml"},
                  annotations={"summary": "{labels.team} spent {value} > {threshold}"})
    ev = Evaluator([budget], clock=clock)
    for _ in range(3):
        ev.observe(record(clock.t, cost=0.5))
    (alert,) = ev.tick()
    assert alert.annotations["summary"] == "ml spent $1.50 > $1.00"
    assert alert.labels["team"] == "ml" and alert.value == pytest.approx(1.5)


def test_fewer_than_n_calls_fires_without_traffic() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(name="Quiet", metric="call_count", op="<", threshold=1, window="1m")],
                   clock=clock)
    assert states(ev.tick()) == ["firing"]
    feed(ev, clock, ok=1)
    assert states(ev.tick(clock.advance(1))) == ["resolved"]


def test_calendar_day_budget_resets_at_utc_midnight() -> None:
    midnight = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    clock = FakeClock(midnight - 600)
    ev = Evaluator([rule(metric="cost_usd", threshold=10, window="calendar_day")], clock=clock)
    for _ in range(8):
        ev.observe(record(clock.t, cost=1.0))
    assert ev.tick() == []
    clock.t = midnight + 60
    for _ in range(8):
        ev.observe(record(clock.t, cost=1.0))
    assert ev.tick() == []  # 16 in the last 24 h, but only 8 today
    for _ in range(3):
        ev.observe(record(clock.t, cost=1.0))
    (alert,) = ev.tick()
    assert alert.value == pytest.approx(11)


def test_records_outside_the_window_or_in_the_future_are_handled() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(metric="call_count", threshold=1, window="1m")], clock=clock)
    ev.observe(record(clock.t - 3600))  # too old: dropped
    ev.observe(record(clock.t + 3600))  # skewed sender: counted now
    ev.observe(record(clock.t + 3600))
    (alert,) = ev.tick()
    assert alert.value == 2


def test_groups_are_capped_and_overflow_counted() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(group_by=["model"])], clock=clock, max_groups=3)
    for i in range(10):
        ev.observe(record(clock.t, model=f"m{i}"))
    assert ev.size()["groups"] == 3
    assert ev.overflow == {"R": 7}


def test_history_is_bounded() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(window="1m")], clock=clock, history=3)
    for _ in range(5):
        feed(ev, clock, errors=1)
        ev.tick()
        ev.tick(clock.advance(120))
    assert len(ev.history()) == 3


def test_firing_counts_report_every_rule() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(name="A", group_by=["model"]), rule(name="B", severity="critical")],
                   clock=clock)
    feed(ev, clock, errors=2, model="x")
    feed(ev, clock, errors=2, model="y")
    ev.tick()
    assert ev.firing_counts() == {("A", "warning"): 2, ("B", "critical"): 1}


def _pool(n: int = 10_000) -> list[Any]:
    # end_time far in the future is clamped to the clock: the same records serve every round.
    return [
        replace(record(0, model=f"model-{i % 3000}", duration=0.01 * (1 + i % 500),
                       error=SERVER_ERROR if i % 9 == 0 else None, trace_id=f"{i:032x}"),
                end_time_s=1e12)
        for i in range(n)
    ]


def _run(ev: Evaluator, clock: FakeClock, rounds: int) -> list[dict[str, int]]:
    """Sizes once the 5-minute window is full (after 20 rounds) and at the end."""
    pool, sizes = _pool(), []
    for round_ in range(rounds):  # 10k calls per 20 s of fake time
        for r in pool:
            ev.observe(r)
        clock.advance(20)
        ev.tick()
        if round_ in (19, rounds - 1):
            sizes.append(ev.size())
    return sizes


def test_memory_stays_bounded_under_a_million_calls() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(group_by=["model"])], clock=clock, max_groups=1000)
    early, final = _run(ev, clock, rounds=100)  # 1e6 calls, 3000 models, ~33 min
    assert final["groups"] <= 1000
    assert final["buckets"] <= final["groups"] * 61
    assert final["samples"] <= final["buckets"] * 5
    assert final["buckets"] <= early["buckets"] * 1.1  # flat, not growing with calls
    assert ev.overflow["R"] > 0


def test_latency_histograms_stay_bounded() -> None:
    clock = FakeClock()
    ev = Evaluator([rule(name="P95", metric="latency_p95", threshold=100, group_by=["model"])],
                   clock=clock)
    early, final = _run(ev, clock, rounds=22)
    assert final["bins"] <= final["buckets"] * 200
    assert final["bins"] <= early["bins"] * 1.1


# --- property test against a reference model --------------------------------------------------
def reference(steps: list[tuple[int, int, float]], for_: float, cooldown: float,
              window: float, start: float) -> list[tuple[str, float]]:
    """The documented semantics, written plainly: buckets of window/60, a rate over those in
    the window, inactive → pending → firing → resolved."""
    width = window / 60
    calls: list[tuple[float, bool]] = []
    state, since, last, out = "inactive", 0.0, 0.0, []
    now = start
    for errors, ok, dt in steps:
        now += dt
        calls += [(now, True)] * errors + [(now, False)] * ok
        lo = int(now // width) - 60
        live = [e for t, e in calls if int(t // width) > lo]
        breach = bool(live) and sum(live) / len(live) > 0.5
        if breach:
            if state == "inactive":
                state, since = "pending", now
            if state == "pending" and now - since >= for_:
                state, last = "firing", now
                out.append(("firing", now))
            elif state == "firing" and now - last >= cooldown:
                last = now
                out.append(("firing", now))
        else:
            if state == "firing":
                out.append(("resolved", now))
            state = "inactive"
    return out


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4),
                             st.sampled_from([0.0, 1.0, 5.0, 30.0, 90.0, 400.0])),
                   max_size=40),
    for_=st.sampled_from([0.0, 5.0, 60.0, 120.0]),
    cooldown=st.sampled_from([0.0, 30.0, 300.0]),
)
def test_state_machine_matches_reference(steps: list[tuple[int, int, float]], for_: float,
                                         cooldown: float) -> None:
    clock = FakeClock()
    start = clock.t
    ev = Evaluator([rule(window="5m", **{"for": for_}, cooldown=cooldown)], clock=clock)
    got: list[tuple[str, float]] = []
    for errors, ok, dt in steps:
        clock.advance(dt)
        feed(ev, clock, errors=errors, ok=ok)
        got += [(a.state, a.at) for a in ev.tick()]
    assert got == reference(steps, for_, cooldown, 300.0, start)
    # Invariants a user relies on, stated directly as well.
    previous, last_firing = "resolved", 0.0
    for status, at in got:  # episodes: firing (repeated no sooner than cooldown), one resolve
        assert status == "firing" or previous == "firing"
        if status == "firing" and previous == "firing":
            assert at - last_firing >= cooldown
        if status == "firing":
            last_firing = at
        previous = status
