"""Tables, engines and schema versioning of the call store: one definition for every database.

The schema is SQLAlchemy Core metadata, so SQLite and PostgreSQL run the same statements.
Times are integer milliseconds since the Unix epoch (UTC): integer division then buckets them
by hour, day or week identically on both databases, with no date functions that differ by
dialect.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from otel_llm import semconv as sc
from otel_llm.core.types import CallRecord

logger = logging.getLogger("otel_llm.store")

SCHEMA_VERSION: Final = 1
"""Bump with an entry in :data:`MIGRATIONS` whenever the tables change."""

MAX_DOCUMENT_IDS: Final = 100
"""Retrieved document ids kept per retrieval (for RAG feedback); longer lists are truncated."""

metadata = sa.MetaData()

# BIGINT ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

calls = sa.Table(
    "otel_llm_calls",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("time_ms", sa.BigInteger, nullable=False, comment="end of the call, Unix ms UTC"),
    sa.Column("service", sa.String(255)),
    sa.Column("project", sa.String(255)),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("span_id", sa.String(16)),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(128)),
    sa.Column("model", sa.String(255), comment="the billed model: response, else request"),
    sa.Column("request_model", sa.String(255)),
    sa.Column("response_model", sa.String(255)),
    sa.Column("input_tokens", sa.Integer, comment="includes cached tokens (GenAI spec)"),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cache_read_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cache_creation_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, comment="NULL when not priced (unknown model, retrieval)"),
    sa.Column("cost_source", sa.String(32)),
    sa.Column("duration_ms", sa.Float),
    sa.Column("time_to_first_chunk_ms", sa.Float),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("error_category", sa.String(32)),
    sa.Column("error_severity", sa.String(16)),
    sa.Column("data_source", sa.String(255)),
    sa.Column("retrieval_documents", sa.Integer),
    sa.Column("document_ids", sa.Text, comment="JSON list of retrieved ids, rank order"),
    # The dashboard's and API's queries: a window of time, optionally one project or provider.
    sa.Index("ix_otel_llm_calls_time", "time_ms"),
    sa.Index("ix_otel_llm_calls_project_time", "project", "time_ms"),
    sa.Index("ix_otel_llm_calls_provider_time", "provider", "model", "time_ms"),
    sa.Index("ix_otel_llm_calls_trace", "trace_id"),
)

schema_version = sa.Table(
    "otel_llm_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_ms", sa.BigInteger, nullable=False),
)

MIGRATIONS: Final[Mapping[int, Callable[[Connection], None]]] = {}
"""``{n: migrate}``: brings a version ``n - 1`` schema to version ``n`` (in one transaction)."""


class SchemaError(RuntimeError):
    """The database holds a schema this version cannot use (written by a newer otel-llm)."""


def database_url(url: str) -> URL:
    """Parse a ``--db`` URL: ``sqlite:///rel.db``, ``sqlite:////abs.db``, ``sqlite://`` (memory)
    or ``postgresql://…`` (``postgres://`` too), which is run on the psycopg 3 driver.

    Raises ``ValueError`` for anything else, naming the accepted forms.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(f"--db: not a database URL: {url!r}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    raise ValueError(
        f"--db must be sqlite:///PATH or postgresql://USER@HOST/DB, got {parsed.drivername}://…"
    )


def make_engine(url: str, *, connect_timeout_s: float = 5.0, pool_size: int = 5) -> Engine:
    """An engine for ``url`` (see :func:`database_url`).

    SQLite: WAL (readers never wait for the writer thread) with ``synchronous=NORMAL`` and a busy
    timeout. PostgreSQL: connections are checked before use, so a server restart costs one
    failed ping instead of a failed write, and connecting gives up after ``connect_timeout_s``.
    """
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        engine = sa.create_engine(
            parsed,
            # One shared connection for an in-memory database: each new one would be empty.
            poolclass=StaticPool if memory else None,
            connect_args={"check_same_thread": False, "timeout": connect_timeout_s},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas(memory))
        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_s,
        connect_args={
            "connect_timeout": max(1, round(connect_timeout_s)),
            "application_name": "otel-llm",
        },
    )


def _sqlite_pragmas(memory: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    return on_connect


def ensure_schema(engine: Engine) -> int:
    """Create the tables if missing, then bring them to :data:`SCHEMA_VERSION`.

    Safe to run concurrently from several processes (the loser of a creation race retries).
    Returns the version found before. Raises :class:`SchemaError` for a newer schema, and
    SQLAlchemy errors when the database cannot be reached.
    """
    for attempt in range(2):
        try:
            metadata.create_all(engine, checkfirst=True)
            break
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt:  # another process created the same tables in between: check again
                raise
    with engine.begin() as conn:
        found = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1))
        version = found.scalar_one_or_none()
        now_ms = int(time.time() * 1000)
        if version is None:
            conn.execute(
                schema_version.insert().values(id=1, version=SCHEMA_VERSION, applied_ms=now_ms)
            )
            return 0
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the call store has schema version {version}, newer than this otel-llm's "
                f"{SCHEMA_VERSION}: upgrade otel-llm or point --db elsewhere"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[step](conn)
            logger.info("otel-llm store: migrated the schema to version %d", step)
        if version < SCHEMA_VERSION:
            conn.execute(
                schema_version.update()
                .where(schema_version.c.id == 1)
                .values(version=SCHEMA_VERSION, applied_ms=now_ms)
            )
        return int(version)


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _finite(value: float | None, scale: float = 1.0) -> float | None:
    # NaN and infinities are storable, but would break every JSON answer computed from them.
    if value is None or not math.isfinite(value):
        return None
    return float(value) * scale


def _count(value: int | None) -> int | None:
    # Bounded to a signed 32-bit column: a sender's absurd number must not fail the whole batch.
    return None if value is None else max(0, min(int(value), 2**31 - 1))


def to_row(record: CallRecord) -> dict[str, Any]:
    """The table row of one accounted call. Strings are cut to their column's length."""
    call = record.call
    cost = record.cost
    error = record.error
    ids = call.document_ids  # retrieved ids in rank order (retrievals only)
    documents = (
        json.dumps([str(i)[:255] for i in list(ids)[:MAX_DOCUMENT_IDS]])
        if ids and call.operation == sc.OP_RETRIEVAL
        else None
    )
    return {
        "time_ms": round(record.end_time_s * 1000) if math.isfinite(record.end_time_s) else 0,
        "service": _text(record.service, 255),
        "project": _text(call.project, 255),
        "trace_id": _text(record.trace_id, 32),
        "span_id": _text(record.span_id, 16),
        "operation": _text(call.operation, 64) or "unknown",
        "provider": _text(call.provider, 128),
        "model": _text(call.model, 255),
        "request_model": _text(call.request_model, 255),
        "response_model": _text(call.response_model, 255),
        "input_tokens": _count(call.input_tokens),
        "output_tokens": _count(call.output_tokens),
        "cache_read_tokens": _count(call.cache_read_tokens) or 0,
        "cache_creation_tokens": _count(call.cache_creation_tokens) or 0,
        "reasoning_tokens": _count(call.reasoning_tokens) or 0,
        "cost_usd": _finite(cost.total_usd) if cost is not None else None,
        "cost_source": cost.source if cost is not None else None,
        "duration_ms": _finite(call.duration_s, 1000.0),
        "time_to_first_chunk_ms": _finite(call.time_to_first_chunk_s, 1000.0),
        "success": error is None and not call.is_error,
        "error_type": _text(error.type, 64) if error is not None else None,
        "error_category": _text(error.category, 32) if error is not None else None,
        "error_severity": _text(error.severity, 16) if error is not None else None,
        "data_source": _text(call.data_source, 255),
        "retrieval_documents": _count(call.retrieval_documents),
        "document_ids": documents,
    }
