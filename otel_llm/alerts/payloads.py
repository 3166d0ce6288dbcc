"""What each notifier sends: pure functions from alerts to request bodies (no I/O, no secrets).

Kept apart from the notifiers so the shapes can be tested (and read) on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

from otel_llm.alerts.evaluator import Alert
from otel_llm.alerts.rules import format_duration

__all__ = [
    "alertmanager_alerts",
    "email_message",
    "rfc3339",
    "slack_message",
    "teams_message",
    "webhook_payload",
]

# Alertmanager's "no end time" in webhook payloads (Go's zero time.Time).
_ZERO_TIME = "0001-01-01T00:00:00Z"
_SLACK_COLORS = {"critical": "#d00000", "warning": "#f2c744", "info": "#439fe0"}
_SLACK_RESOLVED = "#2eb886"
_TEAMS_COLORS = {"critical": "Attention", "warning": "Warning", "info": "Accent"}
_MAX_LINKS = 5


def rfc3339(t: float) -> str:
    """Unix seconds as the RFC 3339 UTC timestamp Alertmanager reads."""
    stamp = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _status(alerts: Sequence[Alert]) -> str:
    return "firing" if any(a.state == "firing" for a in alerts) else "resolved"


def _title(alert: Alert) -> str:
    return f"[{alert.state.upper()}] {alert.rule}"


def _group_labels(alerts: Sequence[Alert]) -> dict[str, str]:
    names = {a.rule for a in alerts}
    return {"alertname": names.pop()} if len(names) == 1 else {}


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def _annotations(alert: Alert) -> dict[str, str]:
    """The rule's annotations plus value, threshold and the sample traces, as strings."""
    out = {"value": alert.value_text, "threshold": f"{alert.op} {alert.threshold_text}"}
    if alert.trace_ids:
        out["trace_ids"] = ",".join(alert.trace_ids)
    if alert.trace_links:
        out["trace_links"] = " ".join(alert.trace_links)
    out.update(alert.annotations)
    return out


def _labels_text(alert: Alert) -> str:
    skip = ("alertname", "severity")
    return ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in skip)


def webhook_payload(alerts: Sequence[Alert], receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook body, version 4, so receivers written for it work unchanged."""
    group = _group_labels(alerts)
    key = ",".join(f'{k}="{v}"' for k, v in sorted(group.items()))
    return {
        "version": "4",
        "groupKey": "{}:{" + key + "}",
        "truncatedAlerts": 0,
        "status": _status(alerts),
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([_annotations(a) for a in alerts]),
        "externalURL": "",
        "alerts": [
            {
                "status": a.state,
                "labels": dict(a.labels),
                "annotations": _annotations(a),
                "startsAt": rfc3339(a.fired_at if a.fired_at is not None else a.active_since),
                "endsAt": rfc3339(a.resolved_at) if a.resolved_at is not None else _ZERO_TIME,
                "generatorURL": a.trace_links[0] if a.trace_links else "",
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


def alertmanager_alerts(alerts: Sequence[Alert], firing_ends_at: float) -> list[dict[str, Any]]:
    """``POST /api/v2/alerts`` body. A firing alert ends at ``firing_ends_at`` unless re-sent,
    so Alertmanager resolves it by itself if this process dies."""
    out = []
    for a in alerts:
        body: dict[str, Any] = {
            "labels": dict(a.labels),
            "annotations": _annotations(a),
            "startsAt": rfc3339(a.fired_at if a.fired_at is not None else a.active_since),
            "endsAt": rfc3339(a.resolved_at if a.resolved_at is not None else firing_ends_at),
        }
        if a.trace_links:
            body["generatorURL"] = a.trace_links[0]
        out.append(body)
    return out


def slack_message(alerts: Sequence[Alert]) -> dict[str, Any]:
    """A Slack incoming-webhook message: one coloured attachment per alert."""
    attachments = []
    for a in alerts:
        color = _SLACK_RESOLVED if a.state == "resolved" else _SLACK_COLORS.get(a.severity)
        fields = [
            {"title": "Value", "value": a.value_text, "short": True},
            {"title": "Threshold", "value": f"{a.op} {a.threshold_text}", "short": True},
            {"title": "Severity", "value": a.severity, "short": True},
            {"title": "Firing for", "value": format_duration(round(a.firing_for)),
             "short": True},
        ]
        if _labels_text(a):
            fields.append({"title": "Labels", "value": _labels_text(a), "short": False})
        if a.trace_ids:
            traces = [
                f"<{link}|{tid[:16]}>" if link else tid
                for tid, link in zip(a.trace_ids, _links(a), strict=True)
            ]
            fields.append({"title": "Traces", "value": " ".join(traces), "short": False})
        text = a.annotations.get("summary", "")
        if a.annotations.get("description"):
            text += "\n" + a.annotations["description"]
        attachments.append({
            "color": color,
            "title": _title(a),
            "text": text,
            "fields": fields,
            "footer": "otel-llm",
            "ts": int(a.at),
        })
    firing = sum(1 for a in alerts if a.state == "firing")
    head = f"[{_status(alerts).upper()}] " + ", ".join(sorted({a.rule for a in alerts}))
    if firing > 1:
        head += f" ({firing} firing)"
    return {"text": head, "attachments": attachments}


def teams_message(alerts: Sequence[Alert]) -> dict[str, Any]:
    """A Microsoft Teams message carrying an Adaptive Card (Workflows / incoming webhook)."""
    body: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    for a in alerts:
        color = "Good" if a.state == "resolved" else _TEAMS_COLORS.get(a.severity, "Default")
        facts = [
            {"title": "Value", "value": a.value_text},
            {"title": "Threshold", "value": f"{a.op} {a.threshold_text}"},
            {"title": "Severity", "value": a.severity},
            {"title": "Firing for", "value": format_duration(round(a.firing_for))},
        ]
        if _labels_text(a):
            facts.append({"title": "Labels", "value": _labels_text(a)})
        if a.trace_ids:
            facts.append({"title": "Traces", "value": ", ".join(a.trace_ids)})
        body.append({
            "type": "Container",
            "separator": bool(body),
            "items": [
                {"type": "TextBlock", "text": _title(a), "weight": "Bolder", "size": "Medium",
                 "color": color, "wrap": True},
                {"type": "TextBlock", "text": a.annotations.get("summary", ""), "wrap": True},
                {"type": "FactSet", "facts": facts},
            ],
        })
        for tid, link in zip(a.trace_ids, _links(a), strict=True):
            if link and len(actions) < _MAX_LINKS:
                actions.append({"type": "Action.OpenUrl", "title": f"Trace {tid[:8]}",
                                "url": link})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": card,
        }],
    }


def email_message(alerts: Sequence[Alert], sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A plain-text email listing the alerts."""
    msg = EmailMessage()
    names = ", ".join(sorted({a.rule for a in alerts}))
    msg["Subject"] = f"[{_status(alerts).upper()}:{len(alerts)}] {names}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    blocks = []
    for a in alerts:
        lines = [
            _title(a) + f" ({a.severity})",
            a.annotations.get("summary", ""),
            f"Value: {a.value_text} (threshold {a.op} {a.threshold_text})",
            f"Since: {rfc3339(a.fired_at if a.fired_at is not None else a.active_since)}",
        ]
        if a.resolved_at is not None:
            lines.append(f"Resolved: {rfc3339(a.resolved_at)}")
        if _labels_text(a):
            lines.append(f"Labels: {_labels_text(a)}")
        if a.annotations.get("description"):
            lines.append(a.annotations["description"])
        for tid, link in zip(a.trace_ids, _links(a), strict=True):
            lines.append(f"Trace: {link or tid}")
        blocks.append("\n".join(line for line in lines if line))
    msg.set_content("\n\n".join(blocks) + "\n\n-- otel-llm\n")
    return msg


def _links(alert: Alert) -> list[str]:
    """One link per trace ID ("" when no Jaeger URL is configured)."""
    links = list(alert.trace_links)
    return links + [""] * (len(alert.trace_ids) - len(links))
