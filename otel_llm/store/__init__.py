"""The call store: every accounted call in SQLite (default) or PostgreSQL, for the API.

``CallStore(url)`` is a :class:`~otel_llm.accounting.CallObserver`; hand it to the accountant
(``observers=[store]``) and ``start()`` it. SQLAlchemy Core gives one code path for both
databases; see :mod:`otel_llm.store._queries` for how windows, buckets and p95 are computed.
"""

from otel_llm.store._results import (
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
    bucket_count,
    bucket_start,
)
from otel_llm.store._schema import SCHEMA_VERSION, SchemaError, database_url
from otel_llm.store._store import (
    METRIC_STORE_DROPPED,
    METRIC_STORE_PENDING,
    METRIC_STORE_WRITTEN,
    CallStore,
    StoreUnavailable,
)

__all__ = [
    "CallStore",
    "StoreUnavailable",
    "SchemaError",
    "SCHEMA_VERSION",
    "database_url",
    "METRIC_STORE_DROPPED",
    "METRIC_STORE_WRITTEN",
    "METRIC_STORE_PENDING",
    # queries and results
    "Window",
    "Interval",
    "CallFilter",
    "Summary",
    "ProviderModel",
    "Bucket",
    "ErrorCount",
    "Totals",
    "ProjectTotals",
    "CallRow",
    "bucket_start",
    "bucket_count",
]
