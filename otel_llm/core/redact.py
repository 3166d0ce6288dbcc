"""Redaction of secrets and personal data in text that leaves the process (content, messages)."""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# Order matters: specific key formats first, then the generic key=value and e-mail rules.
# Every quantifier is bounded or anchored so a scan stays linear on hostile input.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers and bearer/basic tokens
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;'\"]{1,4096}"), r"\1 " + REDACTED),
    # Provider API keys: OpenAI / Anthropic (sk-, sk-proj-, sk-ant-, and the SDKs' masked
    # echoes such as sk-abc***xyz), Google (AIza), AWS access keys, GitHub, Slack, HF, Groq
    (re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,4096}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,4096}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,4096}"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,4096}"), REDACTED),
    (re.compile(r"\b(?:hf|gsk)_[A-Za-z0-9]{20,4096}"), REDACTED),
    # JSON Web Tokens
    (re.compile(r"\beyJ[\w\-]{8,4096}\.[\w\-]{8,4096}\.[\w\-]{8,4096}"), REDACTED),
    # password=..., api_key: ..., "client_secret": "...": keep the name, drop the value
    (
        re.compile(
            r"(?i)\b([\w\-]{0,32}?(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token"
            r"|auth[_\-]?token|private[_\-]?key)[\w\-]{0,32})(['\"]?\s{0,3}[:=]\s{0,3}['\"]?)"
            r"[^\s,;'\"}&]{1,4096}"
        ),
        r"\1\2" + REDACTED,
    ),
    # token=..., refresh_token: ..., "Authorization": "...": only names that *end* in token or
    # authorization (the separator must follow at once), so that usage figures such as
    # input_tokens=12 or token_count=3 stay readable; the name before it is left as it is
    (
        re.compile(
            r"(?i)(token|authorization)(['\"]?\s{0,3}[:=]\s{0,3}['\"]?)"
            r"(?!(?:bearer|basic)\s)[^\s,;'\"}&]{1,4096}"
        ),
        r"\1\2" + REDACTED,
    ),
    # credentials in URLs (postgresql://user:password@host/db): keep the user, drop the password;
    # before the e-mail rule, which would otherwise take "password@host.tld" for an address
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://[^\s:/@]{0,256}:)[^\s@/]{1,1024}@"),
        r"\1" + REDACTED + "@",
    ),
    # e-mail addresses; the look-behind anchors a match at the start of a token
    (
        re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"),
        "[EMAIL]",
    ),
)


_MARGIN = 512


def redact(text: str, max_length: int | None = None) -> str:
    """Return ``text`` with secrets and e-mail addresses replaced, cut to ``max_length``."""
    if max_length is not None and len(text) > max_length + _MARGIN:
        # Scan only what is kept (plus a margin, so a secret straddling the cut is still seen
        # whole): redaction time stays bounded by the cap, not by the input.
        text = text[: max_length + _MARGIN]
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if max_length is not None and len(text) > max_length:
        text = text[:max_length] + "…[truncated]"
    return text
