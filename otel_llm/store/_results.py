"""Result types of the store's queries: the API's response bodies, field for field.

Times are ISO 8601 UTC strings (``...Z``) with a Unix-seconds twin for charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final, Literal

Interval = Literal["hour", "day", "week"]
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
# 1970-01-05 was the first Monday after the epoch: ISO weeks start there, every 7 days.
INTERVALS: Final[dict[str, tuple[int, int]]] = {
    "hour": (_HOUR_MS, 0),
    "day": (_DAY_MS, 0),
    "week": (7 * _DAY_MS, 4 * _DAY_MS),
}


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_s, end_s)`` in Unix seconds."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not self.start_s < self.end_s:
            raise ValueError("a window's start must be before its end")

    @property
    def start_ms(self) -> int:
        return round(self.start_s * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end_s * 1000)


def iso(ms: int | float) -> str:
    """Unix milliseconds as ISO 8601 UTC with a ``Z``."""
    text = datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def bucket_start(ms: int, interval: Interval) -> int:
    """The start (Unix ms) of the UTC bucket holding ``ms``."""
    size, offset = INTERVALS[interval]
    return (ms - offset) // size * size + offset


def bucket_count(window: Window, interval: Interval) -> int:
    size, _ = INTERVALS[interval]
    first = bucket_start(window.start_ms, interval)
    last = bucket_start(window.end_ms - 1, interval)
    return (last - first) // size + 1


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals over a window (DESIGN.md §8 names). Averages and rates are None without calls."""

    start: str
    end: str
    project_id: str | None
    total_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    total_cost_usd: float
    avg_inference_time_ms: float | None
    p95_inference_time_ms: float | None
    success_rate: float | None
    """Percent of calls that succeeded."""
    failed_calls: int
    unpriced_calls: int
    """Calls of a model with no known price: not in ``total_cost_usd``."""


@dataclass(frozen=True, slots=True)
class ProviderModel:
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    errors: int
    avg_inference_time_ms: float | None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: str
    timestamp: float
    """Bucket start, Unix seconds."""
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    errors: int
    avg_inference_time_ms: float | None


@dataclass(frozen=True, slots=True)
class ErrorCount:
    category: str
    error_type: str | None
    count: int
    rate: float
    """Percent of all calls in the window."""


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class ProjectTotals:
    project_id: str | None
    calls: int
    total_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class CallRow:
    """One stored call, as the API lists it."""

    id: int
    time: str
    timestamp: float
    service: str | None
    project_id: str | None
    trace_id: str | None
    span_id: str | None
    operation: str
    provider: str | None
    model: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    cost_source: str | None
    duration_ms: float | None
    time_to_first_chunk_ms: float | None
    success: bool
    error_type: str | None
    error_category: str | None
    error_severity: str | None
    data_source: str | None
    retrieval_documents: int | None
    trace_url: str | None = None


@dataclass(frozen=True, slots=True)
class CallFilter:
    project: str | None = None
    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    trace_id: str | None = None
    success: bool | None = None
