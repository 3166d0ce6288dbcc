"""Notifiers: where alerts go (webhook, Slack, Teams, Alertmanager API v2, email over SMTP).

A notifier's :meth:`~Notifier.send` does one delivery attempt and raises :class:`DeliveryError`
on failure; retries, backoff and threading belong to
:class:`~otel_llm.alerts.worker.NotifierWorker`, so ``send`` never runs on a caller's thread.

Webhook URLs, header values and SMTP passwords are secrets: they are held as
``pydantic.SecretStr``, never appear in a ``repr``, a log line or an error message. HTTP goes
straight through an ``httpx`` transport rather than an ``httpx.Client``, because the client logs
every request URL at INFO, and for Slack or Teams the URL *is* the secret.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from otel_llm.alerts import payloads
from otel_llm.alerts.evaluator import Alert
from otel_llm.alerts.rules import SEVERITY_RANK, Severity, parse_duration

__all__ = [
    "AlertmanagerConfig",
    "AlertmanagerNotifier",
    "DeliveryError",
    "EmailConfig",
    "EmailNotifier",
    "Notifier",
    "NotifierConfig",
    "SlackConfig",
    "SlackNotifier",
    "TeamsConfig",
    "TeamsNotifier",
    "WebhookConfig",
    "WebhookNotifier",
    "build_notifier",
]


class DeliveryError(Exception):
    """One failed delivery. ``retryable`` is False when trying again cannot help (a 4xx, a
    rejected login): the worker then gives up at once. Messages never contain secrets."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    """Delivers alerts somewhere. ``send`` is called from the notifier's own worker thread."""

    name: str
    """Unique name, the ``notifier`` attribute of ``otel_llm.alerts.notifications``."""
    resend_interval: float | None
    """When set, the worker re-sends every firing alert this often (Alertmanager needs it)."""

    def accepts(self, alert: Alert) -> bool:
        """Whether this alert is for this notifier (severity, resolved notifications)."""
        ...

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver ``alerts`` in one attempt; raise :class:`DeliveryError` on failure."""
        ...

    def close(self) -> None:
        """Release connections (optional: the worker skips it when absent)."""
        ...


# --- configuration (the `notifiers:` section of a rules file) -----------------------------------
def _http_url(value: SecretStr) -> SecretStr:
    # The message must not quote the value: it may be a secret webhook URL.
    if not value.get_secret_value().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    """Defaults to the type; names must be unique."""
    min_severity: Severity = "info"
    send_resolved: bool = True
    timeout: float = 10.0

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be > 0")
        return seconds


class _HTTPCommon(_Common):
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    _check_url = field_validator("url")(_http_url)


class WebhookConfig(_HTTPCommon):
    type: Literal["webhook"]


class SlackConfig(_HTTPCommon):
    type: Literal["slack"]


class TeamsConfig(_HTTPCommon):
    type: Literal["teams"]


class AlertmanagerConfig(_HTTPCommon):
    """``url`` is Alertmanager's base URL, e.g. ``http://alertmanager:9093``."""

    type: Literal["alertmanager"]
    resend_interval: float = 60.0

    @field_validator("resend_interval", mode="before")
    @classmethod
    def _resend(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError("must be at least 1s")
        return seconds


class EmailConfig(_Common):
    type: Literal["email"]
    host: str
    port: int = 587
    sender: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    ssl: bool = False
    """SMTP over TLS from the first byte (port 465), instead of STARTTLS."""
    min_severity: Severity = "critical"

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


NotifierConfig = Annotated[
    WebhookConfig | SlackConfig | TeamsConfig | AlertmanagerConfig | EmailConfig,
    Field(discriminator="type"),
]


# --- notifiers ----------------------------------------------------------------------------------
class _Base:
    resend_interval: float | None = None

    def __init__(self, name: str, min_severity: str, send_resolved: bool) -> None:
        self.name = name
        self._min_rank = SEVERITY_RANK[min_severity]
        self._send_resolved = send_resolved

    def accepts(self, alert: Alert) -> bool:
        if alert.state == "resolved" and not self._send_resolved:
            return False
        return SEVERITY_RANK.get(alert.severity, 0) >= self._min_rank

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _HTTPNotifier(_Base):
    kind = "http"

    def __init__(
        self,
        url: str | SecretStr,
        *,
        name: str | None = None,
        headers: Mapping[str, str | SecretStr] | None = None,
        min_severity: str = "info",
        send_resolved: bool = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name or self.kind, min_severity, send_resolved)
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self._headers = {
            k: v if isinstance(v, SecretStr) else SecretStr(v) for k, v in (headers or {}).items()
        }
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else httpx.HTTPTransport()

    def send(self, alerts: Sequence[Alert]) -> None:
        raise NotImplementedError

    def _post(self, body: Any, path: str = "") -> None:
        url = self._url.get_secret_value()
        if path:
            url = url.rstrip("/") + path
        headers = {k: v.get_secret_value() for k, v in self._headers.items()}
        request = httpx.Request(
            "POST", url, json=body, headers=headers, extensions={"timeout": self._timeout}
        )
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            # `from None`: the original exception may quote the URL.
            raise DeliveryError(type(exc).__name__, retryable=True) from None
        status = response.status_code
        if status >= 300:
            retryable = status >= 500 or status in (408, 429)
            raise DeliveryError(f"HTTP {status}", retryable=retryable)

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()


class WebhookNotifier(_HTTPNotifier):
    """POSTs Alertmanager's webhook JSON (version 4) to any URL."""

    kind = "webhook"

    def send(self, alerts: Sequence[Alert]) -> None:
        self._post(payloads.webhook_payload(alerts, self.name))


class SlackNotifier(_HTTPNotifier):
    """Slack incoming webhook: a coloured attachment per alert, with trace links."""

    kind = "slack"

    def send(self, alerts: Sequence[Alert]) -> None:
        self._post(payloads.slack_message(alerts))


class TeamsNotifier(_HTTPNotifier):
    """Microsoft Teams (Workflows or incoming webhook): an Adaptive Card."""

    kind = "teams"

    def send(self, alerts: Sequence[Alert]) -> None:
        self._post(payloads.teams_message(alerts))


class AlertmanagerNotifier(_HTTPNotifier):
    """Alertmanager API v2 (``POST /api/v2/alerts``): routing, grouping, silences, inhibition
    and Alertmanager's own receivers take over. Firing alerts are re-sent every
    ``resend_interval`` and expire after four intervals without one, as Prometheus does."""

    kind = "alertmanager"

    def __init__(self, url: str | SecretStr, *, resend_interval: float = 60.0,
                 clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.resend_interval = resend_interval
        self._clock = clock

    def send(self, alerts: Sequence[Alert]) -> None:
        ends_at = self._clock() + 4 * (self.resend_interval or 60.0)
        self._post(payloads.alertmanager_alerts(alerts, ends_at), "/api/v2/alerts")


class EmailNotifier(_Base):
    """Email over SMTP (stdlib ``smtplib``), STARTTLS by default; critical alerts by default."""

    def __init__(
        self,
        host: str,
        *,
        sender: str,
        to: Sequence[str],
        port: int = 587,
        username: str | None = None,
        password: str | SecretStr | None = None,
        starttls: bool = True,
        use_ssl: bool = False,
        name: str = "email",
        min_severity: str = "critical",
        send_resolved: bool = True,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name, min_severity, send_resolved)
        self._host, self._port = host, port
        self._sender, self._to = sender, tuple(to)
        self._username = username
        self._password = SecretStr(password) if isinstance(password, str) else password
        self._starttls, self._ssl = starttls, use_ssl
        self._timeout = timeout
        self._context = ssl_context

    def send(self, alerts: Sequence[Alert]) -> None:
        message = payloads.email_message(alerts, self._sender, self._to)
        context = self._context or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if self._ssl:
                smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout,
                                        context=context)
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with smtp:
                if self._starttls and not self._ssl:
                    smtp.starttls(context=context)
                if self._username and self._password is not None:
                    smtp.login(self._username, self._password.get_secret_value())
                smtp.send_message(message)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused,
                smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}", retryable=exc.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}", retryable=True) from None


def build_notifier(config: BaseModel, *, transport: httpx.BaseTransport | None = None) -> Notifier:
    """The notifier a ``notifiers:`` entry describes (``transport`` is for tests)."""
    if isinstance(config, EmailConfig):
        return EmailNotifier(
            config.host, sender=config.sender, to=config.to, port=config.port,
            username=config.username, password=config.password, starttls=config.starttls,
            use_ssl=config.ssl, name=config.name or config.type,
            min_severity=config.min_severity, send_resolved=config.send_resolved,
            timeout=config.timeout,
        )
    if not isinstance(config, _HTTPCommon):
        raise TypeError(f"not a notifier config: {type(config).__name__}")
    common: dict[str, Any] = {
        "name": config.name or getattr(config, "type", "webhook"),
        "headers": config.headers,
        "min_severity": config.min_severity,
        "send_resolved": config.send_resolved,
        "timeout": config.timeout,
        "transport": transport,
    }
    if isinstance(config, AlertmanagerConfig):
        return AlertmanagerNotifier(config.url, resend_interval=config.resend_interval, **common)
    kinds: dict[type[BaseModel], type[_HTTPNotifier]] = {
        WebhookConfig: WebhookNotifier, SlackConfig: SlackNotifier, TeamsConfig: TeamsNotifier,
    }
    return kinds[type(config)](config.url, **common)
