"""Read queries of the call store and their result types (the API's response bodies).

Every query is one SQLAlchemy Core statement that runs unchanged on SQLite and PostgreSQL.
Windows are half-open, ``start <= time < end``, on the call's end time. Time buckets are UTC:
hours and days start at multiples of 3600 s / 86400 s since the epoch, weeks on Mondays
(ISO 8601); the bucket of a time is computed with integer division in SQL.

The 95th percentile is the nearest-rank percentile (the smallest duration that at least 95 %
of the window's durations do not exceed, as PostgreSQL's ``percentile_disc(0.95)``): SQLite has
no percentile function, so both databases count the window's durations, then read the one at
rank ``ceil(0.95 n)`` with ``ORDER BY duration LIMIT 1 OFFSET rank-1``. The database sorts;
nothing but that one value is fetched, and the answer is exact.
"""

from __future__ import annotations

import json
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from otel_llm.feedback import Retrieved
from otel_llm.store._results import (
    INTERVALS,
    Bucket,
    CallFilter,
    CallRow,
    ErrorCount,
    Interval,
    ProjectTotals,
    ProviderModel,
    Summary,
    Totals,
    Window,
    bucket_start,
    iso,
)
from otel_llm.store._schema import calls

_ZERO: Final = sa.literal(0)
_TOKENS_IN = sa.func.coalesce(sa.func.sum(calls.c.input_tokens), _ZERO)
_TOKENS_OUT = sa.func.coalesce(sa.func.sum(calls.c.output_tokens), _ZERO)
_COST = sa.func.sum(calls.c.cost_usd)
_FAILED = sa.func.sum(sa.case((calls.c.success, 0), else_=1))
_AVG_MS = sa.func.avg(calls.c.duration_ms)


def _where(window: Window | None, project: str | None) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if window is not None:
        out += [calls.c.time_ms >= window.start_ms, calls.c.time_ms < window.end_ms]
    if project is not None:
        out.append(calls.c.project == project)
    return out


def _int(value: Any) -> int:
    return int(value or 0)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def summary(conn: Connection, window: Window, project: str | None) -> Summary:
    where = _where(window, project)
    row = conn.execute(
        sa.select(
            sa.func.count(),
            _TOKENS_IN,
            _TOKENS_OUT,
            _COST,
            _AVG_MS,
            sa.func.count(calls.c.duration_ms),
            _FAILED,
            sa.func.sum(sa.case((calls.c.cost_source == "unknown_model", 1), else_=0)),
        ).where(*where)
    ).one()
    total, tokens_in, tokens_out = _int(row[0]), _int(row[1]), _int(row[2])
    failed = _int(row[6])
    return Summary(
        start=iso(window.start_ms),
        end=iso(window.end_ms),
        project_id=project,
        total_calls=total,
        total_input_tokens=tokens_in,
        total_output_tokens=tokens_out,
        total_tokens=tokens_in + tokens_out,
        total_cost_usd=float(row[3] or 0.0),
        avg_inference_time_ms=_num(row[4]),
        p95_inference_time_ms=_percentile(conn, where, _int(row[5]), 95),
        success_rate=100.0 * (total - failed) / total if total else None,
        failed_calls=failed,
        unpriced_calls=_int(row[7]),
    )


def _percentile(
    conn: Connection, where: list[sa.ColumnElement[bool]], n: int, pct: int
) -> float | None:
    if n == 0:
        return None
    rank = (pct * n + 99) // 100  # ceil(pct/100 * n) in integers: no float rounding at edges
    value = conn.execute(
        sa.select(calls.c.duration_ms)
        .where(*where, calls.c.duration_ms.is_not(None))
        .order_by(calls.c.duration_ms)
        .limit(1)
        .offset(rank - 1)
    ).scalar()
    return _num(value)


def by_provider(conn: Connection, window: Window, project: str | None) -> list[ProviderModel]:
    cost = sa.func.coalesce(_COST, 0.0)
    rows = conn.execute(
        sa.select(
            calls.c.provider, calls.c.model, sa.func.count(), _TOKENS_IN, _TOKENS_OUT,
            cost, _FAILED, _AVG_MS,
        )
        .where(*_where(window, project))
        .group_by(calls.c.provider, calls.c.model)
        .order_by(cost.desc(), sa.func.count().desc(), calls.c.provider, calls.c.model)
    ).all()
    return [
        ProviderModel(
            provider=r[0], model=r[1], calls=_int(r[2]), input_tokens=_int(r[3]),
            output_tokens=_int(r[4]), total_tokens=_int(r[3]) + _int(r[4]),
            cost_usd=float(r[5] or 0.0), errors=_int(r[6]), avg_inference_time_ms=_num(r[7]),
        )
        for r in rows
    ]


def timeline(
    conn: Connection, window: Window, interval: Interval, project: str | None
) -> list[Bucket]:
    """One bucket per interval of the window, empty ones included, oldest first."""
    size, offset = INTERVALS[interval]
    # Inlined integers (ours, not user input): PostgreSQL cannot match a GROUP BY expression
    # against the select list when each carries its own bind parameters.
    size_sql = sa.literal_column(str(int(size)), sa.BigInteger)
    offset_sql = sa.literal_column(str(int(offset)), sa.BigInteger)
    bucket = ((calls.c.time_ms - offset_sql) // size_sql * size_sql + offset_sql).label("bucket")
    rows = conn.execute(
        sa.select(
            bucket, sa.func.count(), _TOKENS_IN, _TOKENS_OUT, sa.func.coalesce(_COST, 0.0),
            _FAILED, _AVG_MS,
        )
        .where(*_where(window, project))
        .group_by(bucket)
    ).all()
    found = {int(r[0]): r for r in rows}
    first = bucket_start(window.start_ms, interval)
    last = bucket_start(window.end_ms - 1, interval)
    out: list[Bucket] = []
    for start in range(first, last + 1, size):
        r = found.get(start)
        tokens_in, tokens_out = (_int(r[2]), _int(r[3])) if r is not None else (0, 0)
        out.append(
            Bucket(
                start=iso(start),
                timestamp=start / 1000,
                calls=_int(r[1]) if r is not None else 0,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                total_tokens=tokens_in + tokens_out,
                cost_usd=float(r[4] or 0.0) if r is not None else 0.0,
                errors=_int(r[5]) if r is not None else 0,
                avg_inference_time_ms=_num(r[6]) if r is not None else None,
            )
        )
    return out


def errors(conn: Connection, window: Window, project: str | None) -> tuple[int, list[ErrorCount]]:
    """All calls in the window, and the failed ones by (category, error type), most first."""
    where = _where(window, project)
    total = _int(conn.execute(sa.select(sa.func.count()).where(*where)).scalar())
    category = sa.func.coalesce(calls.c.error_category, "system_error")
    rows = conn.execute(
        sa.select(category, calls.c.error_type, sa.func.count())
        .where(*where, calls.c.success.is_(False))
        .group_by(category, calls.c.error_type)
        .order_by(sa.func.count().desc(), category, calls.c.error_type)
    ).all()
    return total, [
        ErrorCount(category=str(r[0]), error_type=r[1], count=_int(r[2]),
                   rate=100.0 * _int(r[2]) / total if total else 0.0)
        for r in rows
    ]


def totals(conn: Connection, window: Window, project: str | None = None) -> Totals:
    row = conn.execute(
        sa.select(sa.func.count(), _TOKENS_IN, _TOKENS_OUT, sa.func.coalesce(_COST, 0.0))
        .where(*_where(window, project))
    ).one()
    return Totals(
        calls=_int(row[0]), input_tokens=_int(row[1]), output_tokens=_int(row[2]),
        total_tokens=_int(row[1]) + _int(row[2]), cost_usd=float(row[3] or 0.0),
    )


def projects(conn: Connection, window: Window, limit: int) -> list[ProjectTotals]:
    cost = sa.func.coalesce(_COST, 0.0)
    rows = conn.execute(
        sa.select(calls.c.project, sa.func.count(), _TOKENS_IN, _TOKENS_OUT, cost)
        .where(*_where(window, None))
        .group_by(calls.c.project)
        .order_by(cost.desc(), sa.func.count().desc(), calls.c.project)
        .limit(limit)
    ).all()
    return [
        ProjectTotals(project_id=r[0], calls=_int(r[1]), total_tokens=_int(r[2]) + _int(r[3]),
                      cost_usd=float(r[4] or 0.0))
        for r in rows
    ]


def recent(
    conn: Connection, window: Window | None, where: CallFilter, limit: int, offset: int
) -> list[CallRow]:
    """Calls newest first (by end time, then insertion order)."""
    clauses = _where(window, where.project)
    for column, value in (
        (calls.c.provider, where.provider),
        (calls.c.model, where.model),
        (calls.c.operation, where.operation),
        (calls.c.trace_id, where.trace_id),
    ):
        if value is not None:
            clauses.append(column == value)
    if where.success is not None:
        clauses.append(calls.c.success.is_(where.success))
    columns = [c for c in calls.c if c.name != "document_ids"]
    rows = conn.execute(
        sa.select(*columns)
        .where(*clauses)
        .order_by(calls.c.time_ms.desc(), calls.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).mappings()
    return [_call_row(r) for r in rows]


def _call_row(r: Any) -> CallRow:
    return CallRow(
        id=int(r["id"]), time=iso(r["time_ms"]), timestamp=r["time_ms"] / 1000,
        service=r["service"], project_id=r["project"], trace_id=r["trace_id"],
        span_id=r["span_id"], operation=r["operation"], provider=r["provider"],
        model=r["model"], request_model=r["request_model"], response_model=r["response_model"],
        input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
        cache_read_tokens=_int(r["cache_read_tokens"]),
        cache_creation_tokens=_int(r["cache_creation_tokens"]),
        reasoning_tokens=_int(r["reasoning_tokens"]), cost_usd=_num(r["cost_usd"]),
        cost_source=r["cost_source"], duration_ms=_num(r["duration_ms"]),
        time_to_first_chunk_ms=_num(r["time_to_first_chunk_ms"]), success=bool(r["success"]),
        error_type=r["error_type"], error_category=r["error_category"],
        error_severity=r["error_severity"], data_source=r["data_source"],
        retrieval_documents=r["retrieval_documents"],
    )


def retrieved(conn: Connection, trace_id: str, span_id: str | None) -> Retrieved | None:
    """The latest retrieval of ``trace_id`` (or its span ``span_id``) that kept document ids."""
    clauses = [calls.c.trace_id == trace_id, calls.c.document_ids.is_not(None)]
    if span_id is not None:
        clauses.append(calls.c.span_id == span_id)
    row = conn.execute(
        sa.select(calls.c.span_id, calls.c.document_ids, calls.c.data_source, calls.c.project)
        .where(*clauses)
        .order_by(calls.c.time_ms.desc(), calls.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    ids = json.loads(row[1])
    return Retrieved(
        trace_id=trace_id,
        span_id=row[0],
        document_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        data_source=row[2],
        project=row[3],
    )
