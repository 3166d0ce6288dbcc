"""Alerts on cost, error rate and latency: rules, evaluator, notifiers, Prometheus export.

``otel_llm.configure(rules=…, notifiers=…)`` wires an :class:`AlertService` in-process
(``tel.alerts``); the gateway drives an :class:`Evaluator` itself. DESIGN.md §5.
"""

from otel_llm.alerts.config import (
    ENV_JAEGER_URL,
    AlertsConfig,
    Delivery,
    RuleError,
    default_rules,
    load_config,
    parse_config,
    resolve,
)
from otel_llm.alerts.evaluator import Alert, Evaluator
from otel_llm.alerts.export import PrometheusExport, Skipped, to_prometheus
from otel_llm.alerts.notifiers import (
    AlertmanagerConfig,
    AlertmanagerNotifier,
    DeliveryError,
    EmailConfig,
    EmailNotifier,
    Notifier,
    NotifierConfig,
    SlackConfig,
    SlackNotifier,
    TeamsConfig,
    TeamsNotifier,
    WebhookConfig,
    WebhookNotifier,
    build_notifier,
)
from otel_llm.alerts.rules import Rule
from otel_llm.alerts.service import AlertService
from otel_llm.alerts.worker import METRIC_ALERTS_NOTIFICATIONS, NotifierWorker

__all__ = [
    # rules and configuration
    "Rule",
    "AlertsConfig",
    "Delivery",
    "RuleError",
    "load_config",
    "parse_config",
    "default_rules",
    "resolve",
    "ENV_JAEGER_URL",
    # evaluation
    "Evaluator",
    "Alert",
    "AlertService",
    # delivery
    "Notifier",
    "NotifierConfig",
    "NotifierWorker",
    "DeliveryError",
    "build_notifier",
    "WebhookNotifier",
    "WebhookConfig",
    "SlackNotifier",
    "SlackConfig",
    "TeamsNotifier",
    "TeamsConfig",
    "AlertmanagerNotifier",
    "AlertmanagerConfig",
    "EmailNotifier",
    "EmailConfig",
    "METRIC_ALERTS_NOTIFICATIONS",
    # Prometheus
    "to_prometheus",
    "PrometheusExport",
    "Skipped",
]
