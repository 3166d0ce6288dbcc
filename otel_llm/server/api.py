"""The metrics, alerts and calls API under ``/api/v1`` (DESIGN.md §7), as an ``APIRouter``.

Every error leaves as a :class:`~otel_llm.CategorizedError` or ``HTTPException`` (or FastAPI's
``RequestValidationError``), which the app's handlers from :mod:`otel_llm.fastapi` turn into
the one error shape; :func:`otel_llm.server.mount` makes sure the app has them. A store outage
answers 503 ``STORE_UNAVAILABLE``.

Windows: ``days`` (1-90, default 7) back from now, or ``start``/``end`` (ISO 8601; no zone
means UTC; at most 366 days apart), half-open ``[start, end)`` on each call's end time.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated, Literal, Protocol, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from otel_llm.alerts import Alert, Rule
from otel_llm.core.exceptions import ExternalServiceError, ValidationError
from otel_llm.feedback import FeedbackRecorder, FeedbackResult
from otel_llm.server import _models as m
from otel_llm.store import (
    CallFilter,
    CallRow,
    CallStore,
    Interval,
    StoreUnavailable,
    Summary,
    Window,
    bucket_count,
)
from otel_llm.store._results import iso

__all__ = ["AlertSource", "build_api_router", "bearer_token_check"]

PREFIX = "/api/v1"
MAX_WINDOW_DAYS = 366
MAX_BUCKETS = 5000
_DAY = 86400.0
T = TypeVar("T")


class AlertSource(Protocol):
    """What the API reads alerts from: an :class:`~otel_llm.alerts.Evaluator` or
    :class:`~otel_llm.alerts.AlertService`."""

    def active(self) -> list[Alert]: ...

    def history(self) -> list[Alert]: ...


def bearer_token_check(token: str | None) -> Callable[[Request], bool]:
    """``authorized(request)``: ``Authorization: Bearer <token>`` (constant-time), or always."""
    if token is None:
        return lambda _request: True
    expected = f"Bearer {token}".encode()
    return lambda request: hmac.compare_digest(
        request.headers.get("authorization", "").encode("utf-8", "replace"), expected
    )


ProjectQ = Annotated[str | None, Query(max_length=255, description="only this project")]
DaysQ = Annotated[int, Query(ge=1, le=90, description="days back from now (default 7)")]
StartQ = Annotated[datetime | None, Query(description="window start, ISO 8601 (UTC default)")]
EndQ = Annotated[datetime | None, Query(description="window end, exclusive (default now)")]


def build_api_router(
    store: CallStore,
    alerts: AlertSource | None = None,
    rules: Sequence[Rule] | None = None,
    jaeger_url: str | None = None,
    *,
    authorized: Callable[[Request], bool] | None = None,
    token: str | None = None,
    feedback: FeedbackRecorder | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The ``/api/v1`` routes over ``store``.

    ``alerts`` feeds ``/alerts`` and ``/alerts/history``; ``rules`` (default: the evaluator's
    own) feeds ``/rules``; ``jaeger_url`` adds ``trace_url`` = ``{jaeger_url}/trace/{id}`` to
    listed calls. ``authorized(request)`` (e.g. the gateway's ``--token`` check) or ``token``
    guards every route (401 + ``WWW-Authenticate: Bearer``). ``feedback`` scores
    ``POST /feedback`` (default: a recorder over the global providers, reading retrieved
    documents from ``store``). ``clock`` gives "now" (Unix seconds).
    """
    check = authorized if authorized is not None else bearer_token_check(token)

    def require_token(request: Request) -> None:
        if not check(request):
            raise HTTPException(401, "authentication required",
                                headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix=PREFIX, dependencies=[Depends(require_token)], tags=["api"])
    recorder = feedback if feedback is not None else FeedbackRecorder([store])
    jaeger = jaeger_url.rstrip("/") if jaeger_url else None
    rule_list = list(rules) if rules is not None else list(_rules_of(alerts))

    def window(days: int, start: datetime | None, end: datetime | None) -> Window:
        return resolve_window(days, start, end, clock())

    @router.get("/metrics/summary", response_model=Summary)
    def summary(project_id: ProjectQ = None, days: DaysQ = 7, start: StartQ = None,
                end: EndQ = None) -> Summary:
        """Calls, tokens, cost, average and p95 latency and success rate over the window."""
        w = window(days, start, end)
        return _guard(lambda: store.summary(w, project_id))

    @router.get("/metrics/by-provider", response_model=m.ByProvider)
    def by_provider(project_id: ProjectQ = None, days: DaysQ = 7, start: StartQ = None,
                    end: EndQ = None) -> m.ByProvider:
        """Calls, tokens, cost and errors per (provider, model), most expensive first."""
        w = window(days, start, end)
        rows = _guard(lambda: store.by_provider(w, project_id))
        return m.ByProvider(start=iso(w.start_ms), end=iso(w.end_ms), project_id=project_id,
                            providers=rows)

    @router.get("/metrics/timeline", response_model=m.Timeline)
    def timeline(
        interval: Annotated[Literal["hour", "day", "week"], Query()] = "hour",
        project_id: ProjectQ = None, days: DaysQ = 7, start: StartQ = None, end: EndQ = None,
    ) -> m.Timeline:
        """One bucket per UTC hour, day or ISO week (Monday) of the window, empty ones too."""
        w = window(days, start, end)
        step: Interval = interval
        if bucket_count(w, step) > MAX_BUCKETS:
            raise ValidationError(f"more than {MAX_BUCKETS} buckets: use a longer interval",
                                  http_status=422, details={"interval": interval})
        buckets = _guard(lambda: store.timeline(w, step, project_id))
        return m.Timeline(interval=interval, start=iso(w.start_ms), end=iso(w.end_ms),
                          project_id=project_id, buckets=buckets)

    @router.get("/metrics/errors", response_model=m.Errors)
    def errors(project_id: ProjectQ = None, days: DaysQ = 7, start: StartQ = None,
               end: EndQ = None) -> m.Errors:
        """Failed calls by error category and by error type, with rates in percent."""
        w = window(days, start, end)
        total, rows = _guard(lambda: store.errors(w, project_id))
        failed = sum(r.count for r in rows)
        categories: dict[str, int] = {}
        for r in rows:
            categories[r.category] = categories.get(r.category, 0) + r.count
        return m.Errors(
            start=iso(w.start_ms), end=iso(w.end_ms), project_id=project_id, total_calls=total,
            failed_calls=failed, error_rate=100.0 * failed / total if total else None,
            by_category=[m.CategoryErrors(category=c, count=n, rate=100.0 * n / total)
                         for c, n in sorted(categories.items(), key=lambda kv: -kv[1])],
            by_type=[m.TypeErrors(category=r.category, error_type=r.error_type, count=r.count,
                                  rate=r.rate) for r in rows],
        )

    @router.get("/overview", response_model=m.Overview)
    def overview() -> m.Overview:
        """Today's and this month's calls, tokens and cost (UTC), the month's projects, and
        how many alerts are active."""
        now = clock()
        today = datetime.fromtimestamp(now, timezone.utc).replace(
            hour=0, minute=0, second=0, microsecond=0)
        month = today.replace(day=1)
        # +1 ms: the end is exclusive, and a call that ended this very millisecond counts.
        day_w = Window(today.timestamp(), now + 0.001)
        month_w = Window(month.timestamp(), now + 0.001)
        active = alerts.active() if alerts is not None else []
        return m.Overview(
            now=iso(now * 1000), today_start=iso(day_w.start_ms),
            month_start=iso(month_w.start_ms),
            today=_guard(lambda: store.totals(day_w)),
            month=_guard(lambda: store.totals(month_w)),
            projects=_guard(lambda: store.projects(month_w)),
            active_alerts=len(active),
            firing_alerts=sum(1 for a in active if a.state == "firing"),
        )

    @router.get("/alerts", response_model=m.Alerts)
    def active_alerts() -> m.Alerts:
        """Pending and firing alerts, with sample trace ids and links."""
        found = alerts.active() if alerts is not None else []
        return m.Alerts(enabled=alerts is not None, alerts=[m.AlertOut.of(a) for a in found])

    @router.get("/alerts/history", response_model=m.Alerts)
    def alert_history(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> m.Alerts:
        """Resolved alerts, newest first."""
        found = alerts.history() if alerts is not None else []
        latest = list(reversed(found))[:limit]
        return m.Alerts(enabled=alerts is not None, alerts=[m.AlertOut.of(a) for a in latest])

    @router.get("/rules", response_model=m.Rules)
    def list_rules() -> m.Rules:
        """The alert rules in force."""
        return m.Rules(rules=[m.rule_json(r) for r in rule_list])

    @router.get("/calls", response_model=m.Calls)
    def list_calls(
        project_id: ProjectQ = None,
        provider: Annotated[str | None, Query(max_length=128)] = None,
        model: Annotated[str | None, Query(max_length=255)] = None,
        operation: Annotated[str | None, Query(max_length=64)] = None,
        trace_id: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{32}$")] = None,
        status: Annotated[Literal["ok", "error"] | None, Query()] = None,
        days: Annotated[int | None, Query(ge=1, le=90)] = None,
        start: StartQ = None,
        end: EndQ = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> m.Calls:
        """Recent calls, newest first, with ``trace_url`` when a Jaeger URL is configured."""
        w = None
        if days is not None or start is not None or end is not None:
            w = window(days or 7, start, end)
        where = CallFilter(project=project_id, provider=provider, model=model,
                           operation=operation, trace_id=trace_id.lower() if trace_id else None,
                           success=None if status is None else status == "ok")
        rows = _guard(lambda: store.calls(w, where, limit, offset))
        if jaeger is not None:
            rows = [r if not r.trace_id else _with_link(r, jaeger) for r in rows]
        return m.Calls(limit=limit, offset=offset, calls=rows)

    @router.post("/feedback", response_model=FeedbackResult)
    def post_feedback(body: m.FeedbackIn) -> FeedbackResult:
        """Score user feedback on a RAG answer: precision@k, recall, satisfaction (0-1)."""
        return _guard(lambda: recorder.record(
            body.trace_id, relevant_ids=body.relevant_ids,
            clicked_positions=body.clicked_positions, rating=body.rating, scale=body.scale,
            k=body.k, span_id=body.span_id, retrieved_ids=body.retrieved_ids,
        ))

    return router


def resolve_window(days: int, start: datetime | None, end: datetime | None,
                   now: float) -> Window:
    """The query window; raises a 422 :class:`ValidationError` for an empty or huge one."""
    if start is None and end is None:
        return Window(now - days * _DAY, now)
    end_s = _seconds(end) if end is not None else now
    start_s = _seconds(start) if start is not None else end_s - days * _DAY
    if not start_s < end_s:
        raise ValidationError("start must be before end", http_status=422,
                              details={"start": iso(start_s * 1000), "end": iso(end_s * 1000)})
    if end_s - start_s > MAX_WINDOW_DAYS * _DAY:
        raise ValidationError(f"the window is longer than {MAX_WINDOW_DAYS} days",
                              http_status=422)
    return Window(start_s, end_s)


def _seconds(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _guard(query: Callable[[], T]) -> T:
    try:
        return query()
    except StoreUnavailable:
        # The reason (host, port, driver message) is in the log and /health, not in the body.
        raise ExternalServiceError("the call store is unavailable; retry later",
                                   code="STORE_UNAVAILABLE", http_status=503,
                                   service="call_store") from None


def _with_link(row: CallRow, jaeger: str) -> CallRow:
    return replace(row, trace_url=f"{jaeger}/trace/{row.trace_id}")


def _rules_of(alerts: AlertSource | None) -> Sequence[Rule]:
    # An Evaluator has .rules, an AlertService has .evaluator.rules.
    found = getattr(alerts, "rules", None)
    if found is None:
        found = getattr(getattr(alerts, "evaluator", None), "rules", None)
    return tuple(r for r in (found or ()) if isinstance(r, Rule))
