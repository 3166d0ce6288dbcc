"""Redaction of secrets and personal data in text that leaves the process (content, messages)."""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# Order matters: specific key formats first, then the generic key=value and e-mail rules.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers and bearer/basic tokens
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*"), r"\1 " + REDACTED),
    # Provider API keys: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), Google (AIza), AWS
    # access keys, GitHub, Slack, Hugging Face, Groq
    (re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\b(?:hf|gsk)_[A-Za-z0-9]{20,}"), REDACTED),
    # JSON Web Tokens
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), REDACTED),
    # password=..., api_key: ..., "secret": "..."
    (
        re.compile(
            r"(?i)\b([\w\-]*(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|"
            r"auth[_\-]?token|private[_\-]?key)[\w\-]*)(\"?\s*[:=]\s*\"?)([^\s\"',;&]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # e-mail addresses
    (re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"), "[EMAIL]"),
)


def redact(text: str, max_length: int | None = None) -> str:
    """Return ``text`` with secrets and e-mail addresses replaced, cut to ``max_length``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if max_length is not None and len(text) > max_length:
        text = text[:max_length] + "…[truncated]"
    return text
