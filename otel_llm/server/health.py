"""``/health``, ``/health/ready`` and ``/health/live`` with the call store as a readiness check.

The routes and their answers are :class:`otel_llm.fastapi.HealthRoutes` (200 ``{"status":
"ok", "checks"}``, or 503 in the error shape naming the failing checks); this module adds the
checks of ``otel-llm serve``: the store (a real ``SELECT 1``), and whatever else the caller
passes (the gateway's downstream, for instance).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from otel_llm.fastapi import HealthCheck, HealthRoutes, add_health_routes
from otel_llm.store import CallStore

__all__ = ["add_health", "store_check"]


def store_check(store: CallStore) -> HealthCheck:
    """Ready when the database answers a query (and holds our schema)."""
    return store.ping


def add_health(
    app: FastAPI,
    store: CallStore | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    *,
    timeout: float = 2.0,
) -> HealthRoutes:
    """Add the health routes to ``app`` with a ``store`` check and ``checks``.

    Reuses the routes :func:`otel_llm.fastapi.instrument_app` installed on ``app`` (no second
    ``/health``), else adds them. Returns them, so more checks can be added later.
    """
    found = getattr(app.state, "otel_llm_health", None)
    routes = found if isinstance(found, HealthRoutes) else None
    if routes is None:
        routes = add_health_routes(app, timeout=timeout)
        app.state.otel_llm_health = routes
    if store is not None:
        routes.add_check("store", store_check(store))
    for name, check in (checks or {}).items():
        routes.add_check(name, check)
    return routes
