"""Response and request bodies of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from otel_llm.alerts import Alert, Rule
from otel_llm.feedback import MAX_IDS
from otel_llm.store import Bucket, CallRow, ProjectTotals, ProviderModel, Totals


class ByProvider(BaseModel):
    start: str
    end: str
    project_id: str | None
    providers: list[ProviderModel]


class Timeline(BaseModel):
    interval: str
    start: str
    end: str
    project_id: str | None
    buckets: list[Bucket]


class CategoryErrors(BaseModel):
    category: str
    count: int
    rate: float = Field(description="percent of all calls in the window")


class TypeErrors(BaseModel):
    category: str
    error_type: str | None
    count: int
    rate: float = Field(description="percent of all calls in the window")


class Errors(BaseModel):
    start: str
    end: str
    project_id: str | None
    total_calls: int
    failed_calls: int
    error_rate: float | None = Field(description="percent of calls that failed")
    by_category: list[CategoryErrors]
    by_type: list[TypeErrors]


class Overview(BaseModel):
    now: str
    today_start: str
    month_start: str
    today: Totals
    month: Totals
    projects: list[ProjectTotals] = Field(description="projects with calls this month")
    active_alerts: int
    firing_alerts: int


class AlertOut(BaseModel):
    rule: str
    severity: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    metric: str
    op: str
    threshold: float
    value: float | None
    value_text: str
    threshold_text: str
    active_since: str
    fired_at: str | None
    resolved_at: str | None
    trace_ids: list[str]
    trace_links: list[str]
    fingerprint: str

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(
            rule=alert.rule, severity=alert.severity, state=alert.state,
            labels=dict(alert.labels), annotations=dict(alert.annotations),
            metric=alert.metric, op=alert.op, threshold=alert.threshold, value=alert.value,
            value_text=alert.value_text, threshold_text=alert.threshold_text,
            active_since=_iso(alert.active_since), fired_at=_iso_or_none(alert.fired_at),
            resolved_at=_iso_or_none(alert.resolved_at), trace_ids=list(alert.trace_ids),
            trace_links=list(alert.trace_links), fingerprint=alert.fingerprint,
        )


class Alerts(BaseModel):
    enabled: bool = Field(description="false when no alert evaluator is wired in")
    alerts: list[AlertOut]


class Rules(BaseModel):
    rules: list[dict[str, Any]]


def rule_json(rule: Rule) -> dict[str, Any]:
    out = rule.model_dump(mode="json", by_alias=True)
    out["window_text"] = rule.window_text
    return out


class Calls(BaseModel):
    limit: int
    offset: int
    calls: list[CallRow]


class FeedbackIn(BaseModel):
    """User feedback on the RAG answer of one trace."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{16}$",
        description="the retrieval span judged; default: the trace's latest retrieval",
    )
    relevant_ids: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    clicked_positions: list[int] = Field(
        default_factory=list, max_length=MAX_IDS, description="1-based ranks of clicked results"
    )
    rating: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    scale: float = Field(default=5.0, gt=0, le=1000, allow_inf_nan=False)
    k: int | None = Field(default=None, ge=1, le=MAX_IDS)
    retrieved_ids: list[str] | None = Field(
        default=None, max_length=MAX_IDS,
        description="the retrieved ids in rank order, when the store does not know them",
    )


def _iso(seconds: float) -> str:
    text = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _iso_or_none(seconds: float | None) -> str | None:
    return None if seconds is None else _iso(seconds)
