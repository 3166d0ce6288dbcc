"""The alert evaluator: a pure state machine over accounted calls and an injected clock.

``observe(record)`` adds a call to per-(rule, group) time buckets; ``tick(now)`` evaluates every
rule and returns the alerts to notify. No threads, no I/O: :class:`~otel_llm.alerts.service.
AlertService` drives it in-process, the gateway drives it from OTLP.

Memory is O(rules x groups x buckets): each rule keeps at most ``max_groups`` groups, each with
at most ``buckets_per_window + 1`` buckets of fixed size (a ``latency_p95`` bucket also holds a
sparse log-scale histogram, bounded by the range of durations). Calls beyond ``max_groups`` are
dropped from that rule and counted in :attr:`Evaluator.overflow`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from otel_llm.alerts._windows import DAY, INACTIVE, Group, RuleWindows, dims, top_samples
from otel_llm.alerts.rules import Rule, format_value
from otel_llm.core.types import CallRecord

__all__ = ["Alert", "Evaluator", "fingerprint"]

State = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert instance (a rule and a group), as notified or as seen by ``active()``.

    ``trace_ids`` are sample calls that breached the rule: errors for ``error_rate``, the
    slowest for latency, the most expensive for cost, the biggest for tokens, empty retrievals
    for ``retrieval_empty_rate``, the latest for ``call_count``.
    """

    rule: str
    severity: str
    state: State
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    metric: str
    op: str
    threshold: float
    value: float | None
    active_since: float
    """When the condition first held (start of pending)."""
    fired_at: float | None
    resolved_at: float | None
    at: float
    """When this snapshot was taken (the tick that produced the notification)."""
    trace_ids: tuple[str, ...] = ()
    trace_links: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def value_text(self) -> str:
        return format_value(self.metric, self.value)

    @property
    def threshold_text(self) -> str:
        return format_value(self.metric, self.threshold)

    @property
    def firing_for(self) -> float:
        """Seconds since the alert fired (until it resolved), 0 when it never fired."""
        if self.fired_at is None:
            return 0.0
        return (self.resolved_at if self.resolved_at is not None else self.at) - self.fired_at


_MAX_OPERATIONS = 64


class Evaluator:
    """Evaluates rules over observed calls. Thread-safe; :meth:`observe` is a lock and a few
    dict operations, so it can run on the thread that ended the call.

    ``clock`` returns Unix seconds (records are bucketed by their ``end_time_s``, clamped to
    the clock so a skewed sender cannot park data in the future). ``jaeger_url`` turns sample
    trace IDs into links ``{jaeger_url}/trace/{trace_id}``. ``default_service`` is the service
    of records that carry none (our own hooks' calls).
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        clock: Callable[[], float] = time.time,
        jaeger_url: str | None = None,
        default_service: str | None = None,
        buckets_per_window: int = 60,
        max_groups: int = 1000,
        samples: int = 5,
        history: int = 1000,
    ) -> None:
        if min(buckets_per_window, max_groups) < 1 or min(samples, history) < 0:
            raise ValueError("buckets_per_window, max_groups >= 1; samples, history >= 0")
        self._clock = clock
        self._jaeger = jaeger_url.rstrip("/") if jaeger_url else None
        self._default_service = default_service
        self._rules = [
            RuleWindows(rule, buckets_per_window, samples, max_groups)
            for rule in rules
            if rule.enabled
        ]
        names = [s.rule.name for s in self._rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        # Most rules filter on the operation: a call visits only the rules that can match it.
        self._by_operation: dict[str | None, tuple[RuleWindows, ...]] = {}
        self._history: deque[Alert] = deque(maxlen=history)
        self._lock = threading.Lock()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(s.rule for s in self._rules)

    @property
    def overflow(self) -> dict[str, int]:
        """Calls dropped per rule because it already had ``max_groups`` groups."""
        with self._lock:
            return {s.rule.name: s.overflow for s in self._rules if s.overflow}

    def observe(self, record: CallRecord) -> None:
        """Add one accounted call (the :class:`~otel_llm.accounting.CallObserver` contract)."""
        operation = record.call.operation
        states = self._by_operation.get(operation)
        if states is None:
            states = tuple(s for s in self._rules if s.admits_operation(operation))
            if len(self._by_operation) < _MAX_OPERATIONS:  # bounded: operations are few
                self._by_operation[operation] = states
        if not states:
            return
        now = self._clock()
        t = record.end_time_s
        if t > now:
            t = now
        values = dims(record, self._default_service)
        with self._lock:
            for state in states:
                state.observe(record, values, t, now)

    def tick(self, now: float | None = None) -> list[Alert]:
        """Evaluate every rule at ``now``; return the alerts to notify (firing or resolved)."""
        at = self._clock() if now is None else now
        out: list[Alert] = []
        for state in self._rules:
            # Released between rules so observers never wait for a whole evaluation.
            with self._lock:
                self._tick_rule(state, at, out)
        return out

    def active(self) -> list[Alert]:
        """Pending and firing alerts, as of the last tick."""
        now = self._clock()
        with self._lock:
            return [
                self._snapshot(s, g, "firing" if g.state == "firing" else "pending", now)
                for s in self._rules
                for g in s.groups.values()
                if g.state != INACTIVE
            ]

    def firing(self) -> list[Alert]:
        return [a for a in self.active() if a.state == "firing"]

    def history(self) -> list[Alert]:
        """Resolved alerts, oldest first (bounded)."""
        with self._lock:
            return list(self._history)

    def firing_counts(self) -> dict[tuple[str, str], int]:
        """Firing alert count per (rule, severity), 0 for rules with none."""
        with self._lock:
            return {
                (s.rule.name, s.rule.severity): sum(
                    1 for g in s.groups.values() if g.state == "firing"
                )
                for s in self._rules
            }

    def size(self) -> dict[str, int]:
        """How much state is held: groups, buckets, samples and histogram bins."""
        with self._lock:
            groups = [g for s in self._rules for g in s.groups.values()]
            buckets = [b for g in groups for b in g.buckets.values()]
            return {
                "groups": len(groups),
                "buckets": len(buckets),
                "samples": sum(len(b.samples) for b in buckets),
                "bins": sum(len(b.hist or ()) for b in buckets),
                "history": len(self._history),
            }

    # -- internals ---------------------------------------------------------------------------
    def _tick_rule(self, state: RuleWindows, now: float, out: list[Alert]) -> None:
        rule = state.rule
        current = state.index(now)
        oldest = current - state.nb  # buckets at or below this index have left every window
        start = oldest
        if rule.calendar_day:
            start = int(now // DAY) * state.nb - 1
        for key, group in list(state.groups.items()):
            for idx in [i for i in group.buckets if i <= oldest]:
                del group.buckets[idx]
            live = [b for i, b in group.buckets.items() if start < i <= current]
            group.value = value = state.value(live)
            if rule.breached(value):
                if group.state == INACTIVE:
                    group.state, group.active_since = "pending", now
                if group.state == "pending" and now - group.active_since >= rule.for_:
                    group.state, group.fired_at, group.last_sent = "firing", now, now
                    group.trace_ids = top_samples(live, state.samples)
                    out.append(self._snapshot(state, group, "firing", now))
                elif group.state == "firing" and now - group.last_sent >= rule.cooldown:
                    group.last_sent = now
                    group.trace_ids = top_samples(live, state.samples) or group.trace_ids
                    out.append(self._snapshot(state, group, "firing", now))
            elif group.state != INACTIVE:
                if group.state == "firing":
                    resolved = self._snapshot(state, group, "resolved", now, resolved_at=now)
                    out.append(resolved)
                    self._history.append(resolved)
                group.state, group.trace_ids = INACTIVE, ()
            if group.state == INACTIVE and not group.buckets and key:
                del state.groups[key]

    def _snapshot(self, state: RuleWindows, group: Group, status: State, now: float,
                  resolved_at: float | None = None) -> Alert:
        rule = state.rule
        values = {
            "value": format_value(rule.metric, group.value),
            "threshold": format_value(rule.metric, rule.threshold),
            "metric": rule.metric,
            "window": rule.window_text,
            "rule": rule.name,
            "severity": rule.severity,
        }
        annotations = {k: t.render(values, group.labels) for k, t in state.templates.items()}
        links: tuple[str, ...] = ()
        if self._jaeger:
            links = tuple(f"{self._jaeger}/trace/{t}" for t in group.trace_ids)
        return Alert(
            rule=rule.name,
            severity=rule.severity,
            state=status,
            labels=dict(group.labels),
            annotations=annotations,
            metric=rule.metric,
            op=rule.op,
            threshold=rule.threshold,
            value=group.value,
            active_since=group.active_since,
            fired_at=group.fired_at if status != "pending" else None,
            resolved_at=resolved_at,
            at=now,
            trace_ids=group.trace_ids,
            trace_links=links,
            fingerprint=fingerprint(group.labels),
        )


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable ID of an alert instance: a hash of its sorted label set."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
