"""API figures equal sums computed here, independently, from the calls the test sent.

Every test runs on SQLite and on a real PostgreSQL server (``db_url``). Expected values are
computed with plain Python and ``datetime`` (not the store's bucket code): sums, averages,
the nearest-rank p95 and UTC hour/day/ISO-week buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from fastapi.testclient import TestClient

from otel_llm.core.types import CallRecord
from otel_llm.server import create_app
from otel_llm.store import CallStore
from tests.pg_fixtures import db_url  # noqa: F401  (fixture)
from tests.store.call_factory import PROJECTS, make_record, ms, workload

NOW_MS = ms("2025-03-15T12:00:00")
DAY_MS = 86_400_000
PINNED = ("total_calls", "total_input_tokens", "total_output_tokens", "total_tokens",
          "total_cost_usd", "avg_inference_time_ms", "p95_inference_time_ms", "success_rate")


class Api:
    def __init__(self, url: str) -> None:
        self.store = CallStore(url, flush_interval_s=0.05)
        self.store.start()
        self.app = create_app(self.store, clock=lambda: NOW_MS / 1000,
                              jaeger_url="http://jaeger.test:16686/")
        self.client = TestClient(self.app)

    def send(self, records: list[CallRecord]) -> None:
        for record in records:
            self.store.observe(record)
        assert self.store.flush(20)
        assert self.store.written == len(records) and not self.store.dropped

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:  # noqa: F811
    api = Api(db_url)
    yield api
    api.client.close()
    api.store.shutdown()


# --- independent expectations -----------------------------------------------------------------
def t_ms(record: CallRecord) -> int:
    return round(record.end_time_s * 1000)


def select(records: list[CallRecord], start: int, end: int,
           project: object = "*") -> list[CallRecord]:
    return [r for r in records
            if start <= t_ms(r) < end and (project == "*" or r.call.project == project)]


def duration_ms(record: CallRecord) -> float | None:
    return None if record.call.duration_s is None else record.call.duration_s * 1000


def expected_summary(records: list[CallRecord]) -> dict[str, Any]:
    tokens_in = sum(r.call.input_tokens or 0 for r in records)
    tokens_out = sum(r.call.output_tokens or 0 for r in records)
    durations = sorted(d for r in records if (d := duration_ms(r)) is not None)
    ok = sum(1 for r in records if r.error is None)
    p95 = None
    if durations:
        p95 = durations[math.ceil(Fraction(95, 100) * len(durations)) - 1]
    return {
        "total_calls": len(records),
        "total_input_tokens": tokens_in,
        "total_output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
        "total_cost_usd": sum(r.cost.total_usd or 0.0 for r in records if r.cost),
        "avg_inference_time_ms": sum(durations) / len(durations) if durations else None,
        "p95_inference_time_ms": p95,
        "success_rate": 100.0 * ok / len(records) if records else None,
        "failed_calls": len(records) - ok,
        "unpriced_calls": sum(1 for r in records if r.cost and r.cost.total_usd is None),
    }


def assert_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        else:
            assert got[key] == value, key


def bucket_of(time_ms: int, interval: str) -> datetime:
    dt = datetime.fromtimestamp(time_ms / 1000, timezone.utc)
    hour = dt.replace(minute=0, second=0, microsecond=0)
    if interval == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if interval == "day" else day - timedelta(days=day.weekday())  # ISO: Monday


def iso_z(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- tests ------------------------------------------------------------------------------------
def test_summary_equals_the_sums_of_the_calls_sent(api: Api) -> None:
    records = workload(1, 400, NOW_MS - 10 * DAY_MS, NOW_MS)
    api.send(records)
    for days in (1, 7, 90):
        for project in ("*", *PROJECTS[:2]):
            params: dict[str, Any] = {"days": days}
            if project != "*":
                params["project_id"] = project
            got = api.get("/api/v1/metrics/summary", **params)
            assert set(PINNED) <= set(got)
            want = expected_summary(select(records, NOW_MS - days * DAY_MS, NOW_MS, project))
            assert_figures(got, want)
    default = api.get("/api/v1/metrics/summary")  # days defaults to 7
    assert_figures(default, expected_summary(select(records, NOW_MS - 7 * DAY_MS, NOW_MS)))
    start, end = "2025-03-09T06:30:00Z", "2025-03-12T00:00:00Z"
    got = api.get("/api/v1/metrics/summary", start=start, end=end)
    assert (got["start"], got["end"]) == ("2025-03-09T06:30:00.000Z", "2025-03-12T00:00:00.000Z")
    assert_figures(got, expected_summary(
        select(records, ms("2025-03-09T06:30:00"), ms("2025-03-12T00:00:00"))))


def test_summary_of_an_empty_window_has_no_rates(api: Api) -> None:
    got = api.get("/api/v1/metrics/summary", days=1)
    assert got["total_calls"] == 0 and got["total_cost_usd"] == 0
    assert got["success_rate"] is None and got["p95_inference_time_ms"] is None


def test_p95_is_the_nearest_rank_percentile(api: Api) -> None:
    # 20 durations 1..20 ms: rank ceil(0.95 * 20) = 19.
    api.send([make_record(NOW_MS - 1000 - i, duration_ms=float(i + 1)) for i in range(20)])
    got = api.get("/api/v1/metrics/summary", days=1)
    assert got["p95_inference_time_ms"] == 19.0 and got["avg_inference_time_ms"] == 10.5


def test_by_provider_equals_the_sums_per_provider_and_model(api: Api) -> None:
    records = workload(2, 300, NOW_MS - 6 * DAY_MS, NOW_MS)
    api.send(records)
    got = api.get("/api/v1/metrics/by-provider", days=7)["providers"]
    groups: dict[tuple[str | None, str | None], list[CallRecord]] = {}
    for r in records:
        groups.setdefault((r.call.provider, r.call.model), []).append(r)
    assert {(g["provider"], g["model"]) for g in got} == set(groups)
    for row in got:
        members = groups[(row["provider"], row["model"])]
        want = expected_summary(members)
        assert row["calls"] == want["total_calls"]
        assert row["input_tokens"] == want["total_input_tokens"]
        assert row["output_tokens"] == want["total_output_tokens"]
        assert row["total_tokens"] == want["total_tokens"]
        assert row["cost_usd"] == pytest.approx(want["total_cost_usd"])
        assert row["errors"] == want["failed_calls"]
    costs = [g["cost_usd"] for g in got]
    assert costs == sorted(costs, reverse=True)


@pytest.mark.parametrize(("interval", "days"), [("hour", 2), ("day", 14), ("week", 60)])
def test_timeline_buckets_equal_the_sums_per_utc_bucket(api: Api, interval: str, days: int) -> None:
    records = workload(3, 400, NOW_MS - days * DAY_MS - DAY_MS, NOW_MS)
    api.send(records)
    got = api.get("/api/v1/metrics/timeline", interval=interval, days=days)
    start = NOW_MS - days * DAY_MS
    inside = select(records, start, NOW_MS)
    by_bucket: dict[str, list[CallRecord]] = {}
    for r in inside:
        by_bucket.setdefault(iso_z(bucket_of(t_ms(r), interval)), []).append(r)
    first, last = bucket_of(start, interval), bucket_of(NOW_MS - 1, interval)
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
    expected_starts = []
    cursor = first
    while cursor <= last:
        expected_starts.append(iso_z(cursor))
        cursor += step[interval]
    assert [b["start"] for b in got["buckets"]] == expected_starts
    for bucket in got["buckets"]:
        want = expected_summary(by_bucket.get(bucket["start"], []))
        assert bucket["calls"] == want["total_calls"]
        assert bucket["total_tokens"] == want["total_tokens"]
        assert bucket["cost_usd"] == pytest.approx(want["total_cost_usd"])
        assert bucket["errors"] == want["failed_calls"]
    assert sum(b["calls"] for b in got["buckets"]) == len(inside)


@pytest.mark.parametrize(("interval", "boundary", "size_ms"), [
    ("hour", "2025-03-12T07:00:00", 3_600_000),
    ("day", "2025-03-12T00:00:00", DAY_MS),
    ("week", "2025-03-10T00:00:00", 7 * DAY_MS),  # a Monday
])
def test_bucket_boundaries(api: Api, interval: str, boundary: str, size_ms: int) -> None:
    b = ms(boundary)
    # One call a millisecond before the boundary, two on it, one at the last millisecond of
    # the bucket, one on the next boundary; the window edges: start included, end excluded.
    times = [b - size_ms, b - 1, b, b, b + size_ms - 1, b + size_ms, b + 2 * size_ms]
    api.send([make_record(t, cost_usd=0.5) for t in times])
    start = datetime.fromtimestamp((b - size_ms) / 1000, timezone.utc)
    end = datetime.fromtimestamp((b + 2 * size_ms) / 1000, timezone.utc)
    got = api.get("/api/v1/metrics/timeline", interval=interval,
                  start=start.isoformat(), end=end.isoformat())
    assert [(x["start"], x["calls"]) for x in got["buckets"]] == [
        (iso_z(start), 2),
        (iso_z(datetime.fromtimestamp(b / 1000, timezone.utc)), 3),
        (iso_z(datetime.fromtimestamp((b + size_ms) / 1000, timezone.utc)), 1),
    ]
    assert [x["cost_usd"] for x in got["buckets"]] == pytest.approx([1.0, 1.5, 0.5])


def test_overview_counts_today_and_this_month_in_utc(api: Api) -> None:
    api.send([
        make_record(ms("2025-03-15T00:00:00"), project="a", cost_usd=1.0, input_tokens=1,
                    output_tokens=1),
        make_record(NOW_MS, project="b", cost_usd=2.0, input_tokens=2, output_tokens=2),
        make_record(ms("2025-03-14T23:59:59.999"), project="a", cost_usd=4.0, input_tokens=4,
                    output_tokens=4),
        make_record(ms("2025-03-01T00:00:00"), project=None, cost_usd=8.0, input_tokens=8,
                    output_tokens=8),
        make_record(ms("2025-02-28T23:59:59.999"), project="c", cost_usd=16.0, input_tokens=16,
                    output_tokens=16),
        make_record(NOW_MS + 1, project="b", cost_usd=32.0),  # the future: not yet
    ])
    got = api.get("/api/v1/overview")
    assert got["today_start"] == "2025-03-15T00:00:00.000Z"
    assert got["month_start"] == "2025-03-01T00:00:00.000Z"
    assert got["today"] == {"calls": 2, "input_tokens": 3, "output_tokens": 3,
                            "total_tokens": 6, "cost_usd": 3.0}
    assert got["month"]["calls"] == 4 and got["month"]["cost_usd"] == pytest.approx(15.0)
    assert got["month"]["total_tokens"] == 30
    projects = {p["project_id"]: (p["calls"], p["cost_usd"]) for p in got["projects"]}
    assert projects == {"a": (2, 5.0), "b": (1, 2.0), None: (1, 8.0)}
    assert got["active_alerts"] == 0


def test_errors_by_category_and_type(api: Api) -> None:
    records = workload(4, 300, NOW_MS - 3 * DAY_MS, NOW_MS)
    api.send(records)
    got = api.get("/api/v1/metrics/errors", days=7)
    failed = [r for r in records if r.error is not None]
    assert got["total_calls"] == len(records) and got["failed_calls"] == len(failed)
    assert got["error_rate"] == pytest.approx(100 * len(failed) / len(records))
    categories: dict[str, int] = {}
    for r in failed:
        assert r.error is not None
        categories[r.error.category] = categories.get(r.error.category, 0) + 1
    assert {c["category"]: c["count"] for c in got["by_category"]} == categories
    for c in got["by_category"]:
        assert c["rate"] == pytest.approx(100 * c["count"] / len(records))
    assert sum(t["count"] for t in got["by_type"]) == len(failed)


def test_calls_newest_first_with_filters_and_trace_links(api: Api) -> None:
    records = workload(5, 120, NOW_MS - 2 * DAY_MS, NOW_MS)
    api.send(records)
    got = api.get("/api/v1/calls", limit=500)["calls"]
    assert len(got) == len(records)
    assert [c["timestamp"] for c in got] == sorted((t_ms(r) / 1000 for r in records),
                                                   reverse=True)
    for call in got:
        assert call["trace_url"] == f"http://jaeger.test:16686/trace/{call['trace_id']}"
    errors = api.get("/api/v1/calls", status="error", limit=500, provider="openai")["calls"]
    assert len(errors) == sum(1 for r in records
                              if r.error is not None and r.call.provider == "openai")
    one = records[7]
    found = api.get("/api/v1/calls", trace_id=one.trace_id)["calls"]
    assert [c["span_id"] for c in found] == [one.span_id]
    assert found[0]["input_tokens"] == one.call.input_tokens
    assert found[0]["model"] == one.call.model and found[0]["service"] == "rag-api"
    page = api.get("/api/v1/calls", limit=10, offset=10)["calls"]
    assert [c["id"] for c in page] == [c["id"] for c in got[10:20]]
    windowed = api.get("/api/v1/calls", days=1, limit=500)["calls"]
    assert len(windowed) == len(select(records, NOW_MS - DAY_MS, NOW_MS))
