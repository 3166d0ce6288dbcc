"""Time-bucketed windows of calls for one rule: the evaluator's memory, bounded by design.

Private to :mod:`otel_llm.alerts`; all access happens under the evaluator's lock.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Mapping, Sequence

from otel_llm.alerts.rules import ERROR_FIELDS, Rule, Template
from otel_llm.core.types import CallRecord

INACTIVE = "inactive"
DAY = 86400.0
# Log-scale latency histogram: bin i holds durations in (G^(i-1), G^i] with G = 1.05, so a p95
# read from it is within about 2.5% of the exact value.
_GAMMA = 1.05
_LOG_GAMMA = math.log(_GAMMA)
_ZERO_BIN = -(10**6)


class Bucket:
    """The calls of one group in one time slice of ``window / buckets_per_window`` seconds."""

    __slots__ = ("hist", "k", "n", "samples", "total")

    def __init__(self, with_hist: bool) -> None:
        self.n = 0  # calls counted (the denominator of a rate)
        self.k = 0  # calls that breach (errors, empty retrievals)
        self.total = 0.0  # summed cost, tokens or seconds
        self.hist: dict[int, int] | None = {} if with_hist else None
        self.samples: list[tuple[float, str]] = []


class Group:
    """One alert instance (a rule and one combination of its group_by values): its buckets
    and where it stands in inactive → pending → firing."""

    __slots__ = ("active_since", "buckets", "fired_at", "labels", "last_sent", "state",
                 "trace_ids", "value")

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = labels
        self.buckets: dict[int, Bucket] = {}
        self.state = INACTIVE
        self.active_since = 0.0
        self.fired_at = 0.0
        self.last_sent = 0.0
        self.value: float | None = None
        self.trace_ids: tuple[str, ...] = ()


# Positions in the tuple of a record's dimension values (computed once per call, shared by all
# rules). `model` is the requested model, except for cost, which is grouped by the billed one.
_POS = {"provider": 0, "model": 1, "project": 3, "operation": 4, "service": 5,
        "error_category": 6, "error_type": 7}
_BILLED_MODEL = 2
Dims = tuple[str, ...]


def dims(record: CallRecord, default_service: str | None) -> Dims:
    """A record's dimension values; "" where it has none (``where`` values are never empty,
    and a group key needs "" there anyway)."""
    call, error = record.call, record.error
    request_model, response_model = call.request_model, call.response_model
    return (
        call.provider or "",
        request_model or response_model or "",
        response_model or request_model or "",
        call.project or "",
        call.operation or "",
        record.service or default_service or "",
        error.category if error is not None else "",
        error.type if error is not None else "",
    )


def _key_getter(positions: tuple[int, ...]) -> Callable[[Dims], tuple[str, ...]] | None:
    """The group key of a record's dims (None: the rule has one group, keyed ``()``)."""
    if not positions:
        return None
    if len(positions) == 1:
        (i,) = positions
        return lambda values: (values[i],)
    return operator.itemgetter(*positions)


class RuleWindows:
    """One rule's groups and buckets; all access under the evaluator's lock."""

    def __init__(self, rule: Rule, buckets: int, samples: int, max_groups: int) -> None:
        self.rule = rule
        self.nb = buckets
        self.width = rule.window_seconds / buckets
        self.samples = samples
        self.max_groups = max_groups
        self.overflow = 0
        pos = dict(_POS, model=_BILLED_MODEL) if rule.metric == "cost_usd" else _POS
        self.keys = tuple(pos[d] for d in rule.group_by)
        self.key_of = _key_getter(self.keys)
        self.filters = tuple((pos[k], frozenset(v)) for k, v in rule.where.items()
                             if k not in ERROR_FIELDS)
        # The operation filter is applied once per call by the evaluator, which hands a call
        # only to the rules that admit its operation (see admits_operation).
        self.call_filters = tuple(f for f in self.filters if f[0] != _POS["operation"])
        self.error_filters = tuple((pos[k], frozenset(v)) for k, v in rule.where.items()
                                   if k in ERROR_FIELDS)
        self.templates: dict[str, Template] = rule.templates()
        self.calendar = rule.calendar_day
        self.add = _ADD[rule.metric]
        self.with_hist = rule.metric == "latency_p95"
        # call_count with an error filter counts the matching failed calls only.
        self.errors_only = rule.metric == "call_count" and bool(self.error_filters)
        self.groups: dict[tuple[str, ...], Group] = {}
        if not rule.group_by:
            # Always present, so "fewer than N calls" rules see 0 when traffic stops.
            self.groups[()] = Group(self._labels(()))

    def index(self, t: float) -> int:
        if self.calendar:
            # Integer day arithmetic so a bucket never straddles UTC midnight.
            day, rest = divmod(t, DAY)
            return int(day) * self.nb + int(rest * self.nb / DAY)
        return int(t // self.width)

    def _labels(self, key: tuple[str, ...]) -> dict[str, str]:
        rule = self.rule
        labels = {"alertname": rule.name, "severity": rule.severity, **rule.labels}
        labels.update((d, v) for d, v in zip(rule.group_by, key, strict=True) if v)
        return labels

    def admits_operation(self, operation: str | None) -> bool:
        """False when the rule's ``where`` excludes this operation (the call cannot count)."""
        at = _POS["operation"]
        return all(operation in allowed for i, allowed in self.filters if i == at)

    def observe(self, record: CallRecord, dims: Dims, t: float, now: float) -> None:
        """Count one call whose operation this rule admits (the evaluator checked it).

        On the caller's thread for every call: plain loops and cached attributes, no
        generators, comprehensions or pydantic attribute access.
        """
        for i, allowed in self.call_filters:
            if dims[i] not in allowed:
                return
        if self.calendar:
            idx, low = self.index(t), self.index(now) - self.nb
        else:
            width = self.width
            idx, low = int(t // width), int(now // width) - self.nb
        if idx <= low:
            return  # already outside every window
        erring = record.error is not None
        if erring:
            for i, allowed in self.error_filters:
                if dims[i] not in allowed:
                    erring = False
                    break
        if self.errors_only and not erring:
            return
        key_of = self.key_of
        key = key_of(dims) if key_of is not None else ()
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= self.max_groups:
                self.overflow += 1
                return
            group = self.groups[key] = Group(self._labels(key))
        bucket = group.buckets.get(idx)
        if bucket is None:
            bucket = group.buckets[idx] = Bucket(self.with_hist)
        score = self.add(bucket, record, erring)
        if score is not None and record.trace_id:
            # A min-heap of the `limit` highest scores: the weakest sample is samples[0].
            samples, limit = bucket.samples, self.samples
            if len(samples) < limit:
                heapq.heappush(samples, (score, record.trace_id))
            elif limit and score > samples[0][0]:
                heapq.heapreplace(samples, (score, record.trace_id))

    def value(self, buckets: Sequence[Bucket]) -> float | None:
        n = sum(b.n for b in buckets)
        if n < self.rule.min_calls:
            return None
        metric = self.rule.metric
        if metric == "call_count":
            return float(n)
        if metric in ("cost_usd", "tokens"):
            return sum(b.total for b in buckets)
        if n == 0:
            return None
        if metric in ("error_rate", "retrieval_empty_rate"):
            return sum(b.k for b in buckets) / n
        if metric == "latency_avg":
            return sum(b.total for b in buckets) / n
        return _quantile(buckets, n, 0.95)


# Per metric: add one call to a bucket; return its sample score (higher = more offending), or
# None when the call is not a sample candidate.
def _add_count(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    b.n += 1
    return r.end_time_s


def _add_error(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    b.n += 1
    if erring:
        b.k += 1
        return r.end_time_s
    return None


def _add_cost(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    cost = r.cost.total_usd if r.cost is not None else None
    if cost is None:
        return None
    b.n += 1
    b.total += cost
    return cost


def _add_latency(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    seconds = r.call.duration_s
    if seconds is None:
        return None
    b.n += 1
    b.total += seconds
    if b.hist is not None:
        i = math.ceil(math.log(seconds) / _LOG_GAMMA) if seconds > 1e-9 else _ZERO_BIN
        b.hist[i] = b.hist.get(i, 0) + 1
    return seconds


def _add_tokens(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    tokens = (r.call.input_tokens or 0) + (r.call.output_tokens or 0)
    b.n += 1
    b.total += tokens
    return float(tokens)


def _add_retrieval(b: Bucket, r: CallRecord, erring: bool) -> float | None:
    documents = r.call.retrieval_documents
    if documents is None:
        return None
    b.n += 1
    if documents == 0:
        b.k += 1
        return r.end_time_s
    return None


_ADD: Mapping[str, Callable[[Bucket, CallRecord, bool], float | None]] = {
    "call_count": _add_count,
    "error_rate": _add_error,
    "cost_usd": _add_cost,
    "latency_avg": _add_latency,
    "latency_p95": _add_latency,
    "tokens": _add_tokens,
    "retrieval_empty_rate": _add_retrieval,
}


def _quantile(buckets: Sequence[Bucket], n: int, q: float) -> float:
    merged: dict[int, int] = {}
    for b in buckets:
        for i, c in (b.hist or {}).items():
            merged[i] = merged.get(i, 0) + c
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i in sorted(merged):
        seen += merged[i]
        if seen >= rank:
            # The point of the bin with equal relative error to both of its edges.
            return 0.0 if i == _ZERO_BIN else 2 * _GAMMA**i / (_GAMMA + 1)
    return 0.0


def top_samples(buckets: Sequence[Bucket], limit: int) -> tuple[str, ...]:
    ranked = sorted((s for b in buckets for s in b.samples), reverse=True)
    out: list[str] = []
    for _, trace_id in ranked:
        if trace_id not in out:
            out.append(trace_id)
            if len(out) == limit:
                break
    return tuple(out)
