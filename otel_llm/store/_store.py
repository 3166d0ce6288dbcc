""":class:`CallStore`: the accounted calls of a service or gateway, queryable by the API."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import sqlalchemy as sa
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider
from sqlalchemy.engine import Connection

from otel_llm.core.types import CallRecord
from otel_llm.feedback import Retrieved
from otel_llm.store import _queries as q
from otel_llm.store import _results as r
from otel_llm.store._schema import SchemaError, calls, ensure_schema, make_engine, to_row
from otel_llm.store._writer import BatchWriter
from otel_llm.version import __version__

logger = logging.getLogger("otel_llm.store")

T = TypeVar("T")

METRIC_STORE_DROPPED = "otel_llm.store.dropped"
METRIC_STORE_WRITTEN = "otel_llm.store.written"
METRIC_STORE_PENDING = "otel_llm.store.pending"


class StoreUnavailable(RuntimeError):
    """The database cannot be reached now (the API answers 503). The message has no secrets."""


class CallStore:
    """Records accounted calls in SQLite or PostgreSQL and answers the API's queries.

    As a :class:`~otel_llm.accounting.CallObserver`, :meth:`observe` only queues the record
    (bounded by ``max_pending``; beyond it records are dropped and counted): a background thread
    writes batches, retrying while the database is unreachable, so an outage never blocks the
    accounting path. ``retention_days`` deletes older calls at start and every hour.

    Lifecycle: ``start()`` (creates or migrates the schema; an unreachable database is logged
    and retried by the writer, a schema from a newer otel-llm raises :class:`SchemaError`),
    ``flush()``, ``shutdown()`` (idempotent, drains for up to ``timeout`` seconds).
    Query methods raise :class:`StoreUnavailable` when the database is down.
    """

    def __init__(
        self,
        url: str = "sqlite:///otel-llm.db",
        *,
        retention_days: float | None = None,
        max_pending: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        retention_interval_s: float = 3600.0,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days is not None and not retention_days > 0:
            raise ValueError(f"--retention-days must be > 0, got {retention_days}")
        self.engine = make_engine(url, connect_timeout_s=connect_timeout_s)
        self.dialect = self.engine.dialect.name
        self.url = self.engine.url.render_as_string(hide_password=True)
        self.retention_days = retention_days
        self._clock = clock
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.written = 0
        self.dropped: dict[str, int] = {}
        self.healthy: bool | None = None
        """False while writes fail (None until the first write)."""
        self.last_error: str | None = None
        meter = (meter_provider or get_meter_provider()).get_meter("otel_llm.store", __version__)
        self._dropped_counter = meter.create_counter(
            METRIC_STORE_DROPPED, unit="{call}",
            description="Accounted calls the store could not record (queue_full, rejected, "
            "shutdown).",
        )
        self._written_counter = meter.create_counter(
            METRIC_STORE_WRITTEN, unit="{call}", description="Accounted calls recorded."
        )
        self._writer: BatchWriter[CallRecord] = BatchWriter(
            self._write,
            retryable=_retryable,
            on_drop=self._on_drop,
            on_health=self._on_health,
            max_pending=max_pending,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            maintenance=self._retention if retention_days is not None else None,
            maintenance_interval_s=retention_interval_s,
        )
        meter.create_observable_gauge(
            METRIC_STORE_PENDING, callbacks=[self._pending_gauge], unit="{call}",
            description="Accounted calls waiting to be written.",
        )
        self._started = False
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._started or self._stopped:
            return
        self._started = True
        try:
            self._ensure_schema()
        except SchemaError:
            raise
        except Exception as exc:  # the database may come later: the writer keeps trying
            logger.warning("otel-llm store: %s is unreachable at start (%s); calls are queued "
                           "and written once it is back", self.url, _describe(exc))
        self._writer.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued call is written; False if some remain after ``timeout``."""
        return self._writer.flush(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._writer.close(timeout)
        self.engine.dispose()

    # -- the CallObserver contract -----------------------------------------------------------
    def observe(self, record: CallRecord) -> None:
        """Queue one accounted call. Never blocks on the database and never raises."""
        self._writer.offer(record)

    @property
    def pending(self) -> int:
        return self._writer.pending

    # -- health ------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the database answers (and holds our schema). Never raises."""
        try:
            self._ensure_schema()
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception as exc:
            self.last_error = _describe(exc)
            return False

    # -- queries (each raises StoreUnavailable when the database is down) ---------------------
    def summary(self, window: r.Window, project: str | None = None) -> r.Summary:
        return self._read(lambda c: q.summary(c, window, project))

    def by_provider(self, window: r.Window, project: str | None = None) -> list[r.ProviderModel]:
        return self._read(lambda c: q.by_provider(c, window, project))

    def timeline(self, window: r.Window, interval: r.Interval,
                 project: str | None = None) -> list[r.Bucket]:
        return self._read(lambda c: q.timeline(c, window, interval, project))

    def errors(self, window: r.Window,
               project: str | None = None) -> tuple[int, list[r.ErrorCount]]:
        return self._read(lambda c: q.errors(c, window, project))

    def totals(self, window: r.Window, project: str | None = None) -> r.Totals:
        return self._read(lambda c: q.totals(c, window, project))

    def projects(self, window: r.Window, limit: int = 100) -> list[r.ProjectTotals]:
        return self._read(lambda c: q.projects(c, window, limit))

    def calls(self, window: r.Window | None = None, where: r.CallFilter | None = None,
              limit: int = 50, offset: int = 0) -> list[r.CallRow]:
        return self._read(lambda c: q.recent(c, window, where or r.CallFilter(), limit, offset))

    def retrieved(self, trace_id: str, span_id: str | None = None) -> Retrieved | None:
        """The :class:`~otel_llm.feedback.DocumentSource` contract, for RAG feedback."""
        return self._read(lambda c: q.retrieved(c, trace_id, span_id))

    def purge(self, before_s: float) -> int:
        """Delete the calls that ended before ``before_s`` (Unix seconds); returns how many."""
        self._ensure_schema()
        with self.engine.begin() as conn:
            result = conn.execute(calls.delete().where(calls.c.time_ms < int(before_s * 1000)))
        return int(result.rowcount or 0)

    # -- internals ---------------------------------------------------------------------------
    def _read(self, query: Callable[[Connection], T]) -> T:
        try:
            self._ensure_schema()
            with self.engine.connect() as conn:
                return query(conn)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as exc:
            self.last_error = _describe(exc)
            raise StoreUnavailable(f"the call store is unavailable: {self.last_error}") from None

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                ensure_schema(self.engine)
                self._schema_ready = True

    def _write(self, batch: list[CallRecord]) -> None:
        self._ensure_schema()
        rows = list(_rows(batch))
        if rows:
            with self.engine.begin() as conn:
                conn.execute(calls.insert(), rows)
        with self._stats_lock:
            self.written += len(rows)
        self._written_counter.add(len(rows))
        if len(rows) < len(batch):
            self._on_drop(len(batch) - len(rows), "rejected")

    def _retention(self) -> None:
        if self.retention_days is None:
            return
        deleted = self.purge(self._clock() - self.retention_days * 86400)
        if deleted:
            logger.info("otel-llm store: retention deleted %d call(s)", deleted)

    def _on_drop(self, count: int, reason: str) -> None:
        with self._stats_lock:
            first = not self.dropped
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self._dropped_counter.add(count, {"reason": reason})
        if first:
            logger.warning("otel-llm store: dropped %d call(s) (%s); further drops are only "
                           "counted in %s", count, reason, METRIC_STORE_DROPPED)

    def _on_health(self, ok: bool, exc: BaseException | None) -> None:
        # One line when writes start failing and one when they recover, not one per retry.
        was = self.healthy
        self.healthy = ok
        if not ok:
            self.last_error = _describe(exc) if exc is not None else None
            if was is not False:
                logger.warning("otel-llm store: cannot write to %s (%s); retrying, calls stay "
                               "queued up to the bound", self.url, self.last_error)
        elif was is False:
            logger.info("otel-llm store: %s reachable again", self.url)

    def _pending_gauge(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._writer.pending)]


def _rows(batch: list[CallRecord]) -> Iterable[dict[str, object]]:
    for record in batch:
        try:
            yield to_row(record)
        except Exception as exc:  # one malformed record must not cost the whole batch
            logger.warning("otel-llm store: skipping a malformed call record: %r", exc)


def _retryable(exc: BaseException) -> bool:
    # Connection-level failures and lock timeouts pass; constraint or data errors never will.
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError,
                            sa.exc.TimeoutError))


def _describe(exc: BaseException | None) -> str:
    """A one-line reason without SQL or parameters (they may hold data)."""
    if exc is None:
        return ""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {text[0] if text else ''}"[:300]
    return f"{type(exc).__name__}: {str(exc).strip()[:300]}"
