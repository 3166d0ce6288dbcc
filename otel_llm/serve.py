"""What ``otel-llm serve`` runs: the gateway with the alert evaluator (and, when present, the
call store and HTTP API) wired into its accounting path. Used by the CLI and by the demo."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from otel_llm import alerts
from otel_llm.gateway.service import Gateway


def wire(gateway: Gateway) -> Callable[[], None]:
    """Add the alert evaluator (``--rules``, else the defaults) to ``gateway``; return cleanup.

    Call before ``gateway.start()``. The cleanup stops what was added; run it after the
    gateway shut down.
    """
    settings = gateway.settings
    alerting = alerts.resolve(settings.rules)
    if settings.jaeger_url and not alerting.jaeger_url:
        alerting = dataclasses.replace(alerting, jaeger_url=settings.jaeger_url)
    service = alerts.AlertService.from_config(
        alerting,
        meter_provider=gateway.meter_provider,
        service_name=None,
        on_error=gateway.accountant.internal_error,
    )
    gateway.accountant.add_observer(service)
    gateway.alerts = service
    service.start()
    return service.shutdown
