"""Settings of ``otel-llm serve``: flag, else ``OTEL_LLM_<FLAG>`` environment, else default.

One table, :data:`OPTIONS`, declares every setting that has a flag: the CLI builds its arguments
from it and :meth:`GatewaySettings.resolve` reads flags and environment through it, so the two
cannot drift. Values are validated early with a ``ValueError`` that names the flag.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = ("GatewaySettings", "Option", "OPTIONS", "env_name")

FORWARD_PROTOCOLS: Final = ("grpc", "http/protobuf")
_MIB: Final = 1024 * 1024
_DURATIONS: Final = (
    "shutdown_timeout",
    "export_timeout",
    "retry_initial",
    "retry_max",
    "retry_after",
)


@dataclass(frozen=True)
class GatewaySettings:
    """Validated settings. Construct directly (tests, embedding) or with :meth:`resolve`."""

    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    forward: str | None = None
    forward_protocol: str = "grpc"
    db: str | None = "sqlite:///otel-llm.db"
    retention_days: float | None = None
    rules: str | None = None
    prices: str | None = None
    token: str | None = field(default=None, repr=False)  # a secret: never in repr or logs
    queue_size: int = 100_000
    queue_dir: str | None = None
    jaeger_url: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_request_bytes: int = 8 * _MIB
    shutdown_timeout: float = 10.0
    enrich: bool = True
    # Enrichment is CPU-bound under one GIL: more handler threads only add contention (the
    # bench measured 8 threads ~25% slower than 2). grpc-core reads bodies off these threads.
    export_workers: int = 2
    receiver_workers: int = 2
    max_inflight: int = 16
    """Export requests handled at once per receiver; more are refused (RESOURCE_EXHAUSTED/503)."""
    # Not flags: tuning for tests and embedding.
    export_timeout: float = 10.0
    retry_initial: float = 0.5
    retry_max: float = 5.0
    retry_after: float = 1.0
    """Seconds a client is told to wait when the queue is full."""

    def __post_init__(self) -> None:
        if self.retention_days is not None and not self.retention_days > 0:
            raise ValueError(f"--retention-days must be > 0, got {self.retention_days}")
        for name in ("grpc_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"--{_flag(name)} must be between 0 and 65535, got {port}")
        if not self.host.strip():
            raise ValueError("--host must not be empty")
        if self.forward_protocol not in FORWARD_PROTOCOLS:
            raise ValueError(
                f"--forward-protocol must be one of {', '.join(FORWARD_PROTOCOLS)}, "
                f"got {self.forward_protocol!r}"
            )
        if self.forward is not None:
            _check_url("--forward", self.forward)
        if self.jaeger_url is not None:
            _check_url("--jaeger-url", self.jaeger_url)
        for name in ("queue_size", "export_workers", "receiver_workers", "max_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        if self.max_request_bytes < 1024:
            raise ValueError(
                f"--max-request-bytes must be at least 1024, got {self.max_request_bytes}"
            )
        for name in _DURATIONS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        for name in ("tls_cert", "tls_key", "prices", "rules"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"--{_flag(name)}: no such file: {path!r}")
        if self.token is not None and not self.token.strip():
            raise ValueError("--token must not be empty")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def resolve(
        cls,
        args: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> GatewaySettings:
        """Settings from parsed flags (``vars(namespace)``; None = not given), else the
        environment (``os.environ`` by default), else defaults; ``extra`` sets non-flag fields."""
        args = args or {}
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option in OPTIONS:
            given = args.get(option.field)
            if given is not None:
                values[option.field] = given
                continue
            raw = environ.get(env_name(option.field))
            if raw is not None and raw.strip():
                try:
                    values[option.field] = option.parse(raw.strip())
                except ValueError as exc:
                    raise ValueError(f"{env_name(option.field)}: {exc}") from None
        return cls(**values, **extra)

    def replace(self, **changes: Any) -> GatewaySettings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Option:
    """One flag: its settings field, how to parse its text, and its help."""

    field: str
    parse: Callable[[str], Any]
    help: str
    metavar: str | None = None
    boolean: bool = False

    @property
    def flag(self) -> str:
        return "--" + _flag(self.field)


def env_name(field_name: str) -> str:
    """``queue_dir`` -> ``OTEL_LLM_QUEUE_DIR``."""
    return "OTEL_LLM_" + field_name.upper()


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _str(text: str) -> str:
    return text


OPTIONS: Final[tuple[Option, ...]] = (
    Option("host", _str, "address the receivers listen on (default 127.0.0.1)", "HOST"),
    Option("grpc_port", _int, "OTLP/gRPC port; 0 picks a free one (default 4317)", "PORT"),
    Option(
        "http_port",
        _int,
        "OTLP/HTTP port, also serving /metrics and the API; 0 picks a free one (default 4318)",
        "PORT",
    ),
    Option(
        "forward",
        _str,
        "downstream OTLP endpoint (Jaeger, a collector): http://host:port is plaintext gRPC, "
        "https:// TLS; a base URL for http/protobuf. None: traces are enriched and recorded only",
        "URL",
    ),
    Option("forward_protocol", _str, "grpc (default) or http/protobuf", "PROTOCOL"),
    Option("db", _str, "call store URL (default sqlite:///otel-llm.db)", "URL"),
    Option("retention_days", _float, "delete stored calls older than this many days", "DAYS"),
    Option("rules", _str, "alert rules YAML file", "PATH"),
    Option("prices", _str, "YAML file of price overrides and aliases", "PATH"),
    Option("token", _str, "bearer token required on the receivers and the API", "TOKEN"),
    Option("queue_size", _int, "export queue bound, in spans (default 100000)", "N"),
    Option(
        "queue_dir",
        _str,
        "keep the export queue on disk (SQLite WAL) in this directory: survives restarts",
        "PATH",
    ),
    Option("jaeger_url", _str, "Jaeger UI base URL, for trace links in alerts", "URL"),
    Option("tls_cert", _str, "TLS certificate (PEM) for both receivers; needs --tls-key", "PATH"),
    Option("tls_key", _str, "TLS private key (PEM) for both receivers", "PATH"),
    Option(
        "max_request_bytes",
        _int,
        "largest request accepted, compressed and decompressed (default 8 MiB)",
        "BYTES",
    ),
    Option(
        "shutdown_timeout",
        _float,
        "seconds to drain the queue on shutdown (default 10)",
        "SECONDS",
    ),
    Option(
        "enrich",
        _bool,
        "add cost and error attributes (default on; off = pass-through)",
        boolean=True,
    ),
    Option("export_workers", _int, "concurrent exports to the downstream (default 2)", "N"),
    Option(
        "receiver_workers",
        _int,
        "threads decoding and enriching requests, per receiver (default 2)",
        "N",
    ),
    Option(
        "max_inflight",
        _int,
        "export requests handled at once per receiver; more are refused with "
        "RESOURCE_EXHAUSTED / 503 (default 16)",
        "N",
    ),
)


def _flag(field_name: str) -> str:
    return field_name.replace("_", "-")


def _check_url(flag: str, url: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"{flag} has an invalid port: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{flag} must be an http:// or https:// URL, got {url!r}")
