"""The HTTP side of ``otel-llm serve``: metrics API, alerts API, health, dashboard.

Mount everything on the gateway's FastAPI app (one port with OTLP/HTTP and ``/metrics``)::

    mount(gateway.app, store, alerts=evaluator, jaeger_url=..., authorized=gateway.authorized)

or build a standalone app with :func:`create_app`. Errors take the one error shape through the
handlers of :mod:`otel_llm.fastapi`, which :func:`mount` installs when the app has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from fastapi import FastAPI, Request

from otel_llm.alerts import Rule
from otel_llm.fastapi import HealthCheck, install_error_handlers, instrument_app
from otel_llm.feedback import FeedbackRecorder
from otel_llm.server.api import AlertSource, bearer_token_check, build_api_router
from otel_llm.server.dashboard import build_dashboard_router
from otel_llm.server.health import add_health, store_check
from otel_llm.store import CallStore

__all__ = [
    "mount",
    "create_app",
    "build_api_router",
    "build_dashboard_router",
    "add_health",
    "store_check",
    "bearer_token_check",
    "AlertSource",
]


def mount(
    app: FastAPI,
    store: CallStore,
    *,
    alerts: AlertSource | None = None,
    rules: Sequence[Rule] | None = None,
    jaeger_url: str | None = None,
    authorized: Callable[[Request], bool] | None = None,
    token: str | None = None,
    feedback: FeedbackRecorder | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    dashboard: bool = True,
    clock: Callable[[], float] = time.time,
) -> None:
    """Add ``/api/v1/…``, ``/health`` (+ ``/ready``, ``/live``) and the dashboard to ``app``.

    Call after :func:`otel_llm.fastapi.instrument_app` (when used), before the app serves.
    ``authorized``/``token`` guard the API (not health, not the static page). ``checks`` are
    readiness checks besides the store's. See :func:`build_api_router` for the rest.
    """
    if not getattr(app.state, "otel_llm_instrumented", False):
        install_error_handlers(app)
    app.include_router(build_api_router(
        store, alerts, rules, jaeger_url, authorized=authorized, token=token,
        feedback=feedback, clock=clock,
    ))
    add_health(app, store, checks)
    if dashboard:
        app.include_router(build_dashboard_router())


def create_app(
    store: CallStore,
    *,
    title: str = "otel-llm",
    instrument: bool = True,
    alerts: AlertSource | None = None,
    rules: Sequence[Rule] | None = None,
    jaeger_url: str | None = None,
    authorized: Callable[[Request], bool] | None = None,
    token: str | None = None,
    feedback: FeedbackRecorder | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    dashboard: bool = True,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """A FastAPI app serving only the API, health and dashboard over ``store``.

    ``instrument`` applies :func:`otel_llm.fastapi.instrument_app` (request spans, request ids,
    access logs, error shape) on the global providers; the rest is :func:`mount`'s.
    """
    app = FastAPI(title=title)
    if instrument:
        instrument_app(app, health=False)
    mount(app, store, alerts=alerts, rules=rules, jaeger_url=jaeger_url, authorized=authorized,
          token=token, feedback=feedback, checks=checks, dashboard=dashboard, clock=clock)
    return app
