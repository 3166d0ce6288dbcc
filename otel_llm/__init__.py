"""otel-llm: OpenTelemetry for LLM and RAG calls — tokens, cost in USD, error category, alerts."""

from otel_llm.core.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusinessLogicError,
    CategorizedError,
    EmbeddingServiceError,
    ExternalServiceError,
    InternalError,
    LLMServiceError,
    NotFoundError,
    RateLimitError,
    ResourceExhaustedError,
    ValidationError,
    VectorDatabaseError,
)
from otel_llm.core.types import CallRecord, Cost, ErrorInfo, LLMCall
from otel_llm.feedback import FeedbackResult, record_feedback
from otel_llm.hooks import (
    Invocation,
    embedding,
    llm_call,
    rag_pipeline,
    rerank,
    retrieval,
    trace_llm,
)
from otel_llm.processor import LLMSpanProcessor
from otel_llm.telemetry import Telemetry, configure
from otel_llm.version import __version__

__all__ = [
    "__version__",
    # set-up
    "configure",
    "Telemetry",
    "LLMSpanProcessor",
    # hooks
    "llm_call",
    "embedding",
    "retrieval",
    "rerank",
    "rag_pipeline",
    "trace_llm",
    "Invocation",
    # RAG quality
    "record_feedback",
    "FeedbackResult",
    # values
    "LLMCall",
    "Cost",
    "ErrorInfo",
    "CallRecord",
    # application exceptions
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
    "RateLimitError",
    "ResourceExhaustedError",
    "InternalError",
]
