"""What ``otel-llm serve`` runs: the gateway with the alert evaluator, the call store, the HTTP
API and the dashboard wired in. Used by the CLI and by the demo."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from otel_llm import alerts
from otel_llm.fastapi import instrument_app
from otel_llm.feedback import FeedbackRecorder
from otel_llm.gateway.service import Gateway
from otel_llm.server import mount
from otel_llm.store import CallStore


def wire(gateway: Gateway) -> Callable[[], None]:
    """Add alerts (``--rules``, else the defaults), the call store (``--db``) with the API,
    health routes and dashboard to ``gateway``; return the cleanup.

    Call before ``gateway.start()``. The cleanup stops what was added; run it after the
    gateway shut down. An unreachable database is not fatal: the store retries, and
    ``/health/ready`` answers 503 meanwhile.
    """
    settings = gateway.settings
    alerting = alerts.resolve(settings.rules)
    if settings.jaeger_url:  # --jaeger-url / OTEL_LLM_JAEGER_URL, over the rules file's
        alerting = dataclasses.replace(alerting, jaeger_url=settings.jaeger_url)
    service = alerts.AlertService.from_config(
        alerting,
        meter_provider=gateway.meter_provider,
        service_name=None,
        on_error=gateway.accountant.internal_error,
    )
    gateway.accountant.add_observer(service)
    gateway.alerts = service
    cleanups: list[Callable[[], None]] = [service.shutdown]
    if settings.db:
        store = CallStore(settings.db, retention_days=settings.retention_days,
                          meter_provider=gateway.meter_provider)
        store.start()
        cleanups.append(store.shutdown)
        gateway.accountant.add_observer(store)
        queue = gateway.pipeline.queue
        instrument_app(gateway.app, health=False,
                       excluded_urls="/v1/traces,/v1/metrics,/v1/logs,/metrics")
        mount(
            gateway.app, store, alerts=service, rules=alerting.rules,
            jaeger_url=alerting.jaeger_url, authorized=gateway.authorized,
            feedback=FeedbackRecorder([store], meter_provider=gateway.meter_provider),
            # Not the downstream: the queue rides its outages out, and taking the gateway out of
            # rotation then would only move the load. A full queue refuses data: not ready.
            checks={"queue": lambda: queue is None or queue.has_room(1)},
        )
    service.start()

    def cleanup() -> None:
        for stop in reversed(cleanups):
            stop()

    return cleanup
