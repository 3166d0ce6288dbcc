"""Application exceptions that know their own error category (re-exported from ``otel_llm``).

Raise these from RAG and service code. :func:`otel_llm.core.errors.classify` recognises them
before anything else and reports their own category and severity, so an error raised on purpose
is never second-guessed from its message. ``to_dict()`` is the inner object of the API error
shape ``{"error": {...}}``.

This module has no dependencies inside the package beyond the value types, so that
:mod:`otel_llm.core.errors` can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, get_args

from otel_llm.core.types import Category, Severity

__all__ = [
    "CategorizedError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "BusinessLogicError",
    "ExternalServiceError",
    "EmbeddingServiceError",
    "VectorDatabaseError",
    "LLMServiceError",
    "ResourceExhaustedError",
    "RateLimitError",
    "InternalError",
]

_SEVERITIES = frozenset(get_args(Severity))


class CategorizedError(Exception):
    """An error that carries its own category, severity, HTTP status and ``error.type``.

    Subclasses change only the class-level defaults; ``code``, ``details``, ``severity``,
    ``http_status`` and ``error_type`` can be overridden per instance. ``error_type`` should be
    a key of :data:`otel_llm.core.errors.ERROR_TYPES`; the classifier reports any other value
    as ``_OTHER``. ``str(exc)`` is ``message``. Raises ``ValueError`` for an unknown severity.
    """

    default_code: ClassVar[str] = "INTERNAL_ERROR"
    default_category: ClassVar[Category] = "system_error"
    default_severity: ClassVar[Severity] = "high"
    default_http_status: ClassVar[int] = 500
    default_error_type: ClassVar[str] = "_OTHER"

    message: str
    code: str
    category: Category
    severity: Severity
    details: dict[str, object]
    http_status: int
    error_type: str

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
        severity: Severity | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        if severity is not None and severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {sorted(_SEVERITIES)}, not {severity!r}")
        self.message = message
        self.code = code if code is not None else self.default_code
        self.category = self.default_category
        self.severity = severity if severity is not None else self.default_severity
        # A copy: the caller's mapping may be reused or mutated after the raise.
        self.details = dict(details) if details is not None else {}
        self.http_status = http_status if http_status is not None else self.default_http_status
        self.error_type = error_type if error_type is not None else self.default_error_type

    def to_dict(self) -> dict[str, object]:
        """The API error object: ``code``, ``message``, ``category``, ``severity``, ``details``."""
        return {
            "code": self.code,
            "message": self.message,
            "category": self.category,
            "severity": self.severity,
            "details": dict(self.details),
        }


class ValidationError(CategorizedError):
    """The request is malformed or fails validation (400)."""

    default_code = "VALIDATION_ERROR"
    default_category = "validation"
    default_severity = "low"
    default_http_status = 400
    default_error_type = "invalid_request"


class AuthenticationError(CategorizedError):
    """Missing or invalid credentials (401)."""

    default_code = "AUTHENTICATION_ERROR"
    default_category = "authentication"
    default_severity = "critical"
    default_http_status = 401
    default_error_type = "authentication"


class AuthorizationError(CategorizedError):
    """Valid credentials without the right to do this (403)."""

    default_code = "AUTHORIZATION_ERROR"
    default_category = "authorization"
    default_severity = "high"
    default_http_status = 403
    default_error_type = "permission_denied"


class NotFoundError(CategorizedError):
    """The named resource does not exist (404)."""

    default_code = "NOT_FOUND"
    default_category = "validation"
    default_severity = "high"
    default_http_status = 404
    default_error_type = "not_found"


class BusinessLogicError(CategorizedError):
    """The request is well-formed but breaks a rule of the application (422)."""

    default_code = "BUSINESS_LOGIC_ERROR"
    default_category = "business_logic"
    default_severity = "medium"
    default_http_status = 422


class ExternalServiceError(CategorizedError):
    """A dependency (LLM provider, embedding service, vector database) failed (502).

    ``service`` names the dependency; it is stored in ``details["service"]`` so that it reaches
    the API error shape.
    """

    default_code = "EXTERNAL_SERVICE_ERROR"
    default_category = "external_service"
    default_severity = "high"
    default_http_status = 502
    default_error_type = "server_error"
    default_service: ClassVar[str | None] = None

    service: str | None

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
        severity: Severity | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            details=details,
            severity=severity,
            http_status=http_status,
            error_type=error_type,
        )
        if service is not None:
            self.details["service"] = service
        elif "service" not in self.details and self.default_service is not None:
            self.details["service"] = self.default_service
        found = self.details.get("service")
        self.service = found if isinstance(found, str) else None


class EmbeddingServiceError(ExternalServiceError):
    """The embedding service failed."""

    default_code = "EMBEDDING_SERVICE_ERROR"
    default_service = "embedding"


class VectorDatabaseError(ExternalServiceError):
    """The vector database failed."""

    default_code = "VECTOR_DATABASE_ERROR"
    default_service = "vector_database"


class LLMServiceError(ExternalServiceError):
    """The LLM provider failed."""

    default_code = "LLM_SERVICE_ERROR"
    default_service = "llm"


class ResourceExhaustedError(CategorizedError):
    """A quota or capacity limit was reached (429).

    ``retry_after`` (seconds), when known, is kept as an attribute and in
    ``details["retry_after"]``.
    """

    default_code = "RESOURCE_EXHAUSTED"
    default_category = "resource_error"
    default_severity = "high"
    default_http_status = 429
    default_error_type = "rate_limit"

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
        severity: Severity | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            details=details,
            severity=severity,
            http_status=http_status,
            error_type=error_type,
        )
        self.retry_after = retry_after
        if retry_after is not None:
            self.details["retry_after"] = retry_after


class RateLimitError(ResourceExhaustedError):
    """Too many requests in a time window (429)."""

    default_code = "RATE_LIMIT_EXCEEDED"


class InternalError(CategorizedError):
    """A fault of this application itself (500)."""

    default_code = "INTERNAL_ERROR"
