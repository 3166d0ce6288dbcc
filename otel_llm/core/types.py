"""The values the pure core passes around: one LLM call, its cost, its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Category = Literal[
    "validation",
    "authentication",
    "authorization",
    "business_logic",
    "external_service",
    "system_error",
    "resource_error",
]
Severity = Literal["low", "medium", "high", "critical"]
CostSource = Literal["price_table", "override", "unknown_model"]


@dataclass(slots=True)
class LLMCall:
    """One LLM / RAG operation, whatever convention described it. Treat it as immutable.

    (Not ``frozen``: a frozen dataclass costs ~8 µs more to build, on every call's hot path.)

    Token counts follow the GenAI spec: ``input_tokens`` *includes* cache-read and
    cache-creation tokens, ``output_tokens`` includes reasoning tokens. ``None`` means the
    count was not reported (as opposed to 0).
    """

    operation: str
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    duration_s: float | None = None
    time_to_first_chunk_s: float | None = None
    is_error: bool = False
    error_type: str | None = None
    project: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    data_source: str | None = None
    retrieval_documents: int | None = None
    document_ids: tuple[str, ...] = ()
    """Ids of the retrieved documents in rank order (retrievals; empty when unknown)."""
    # Cost / category already present on the span (set by us or by another tool).
    cost_usd: float | None = None
    cost_source: str | None = None
    error_category: str | None = None
    error_severity: str | None = None

    @property
    def model(self) -> str | None:
        """The model that served the call: the response model when known, else the requested."""
        return self.response_model or self.request_model


class Cost(NamedTuple):
    """Cost of one call in USD. ``total_usd`` is None for an unknown model (never a silent 0).

    (A named tuple: immutable, and built on every call's path at a third of a frozen
    dataclass's cost.)
    """

    total_usd: float | None
    input_usd: float | None
    output_usd: float | None
    source: CostSource

    @property
    def known(self) -> bool:
        return self.total_usd is not None


UNKNOWN_COST = Cost(None, None, None, "unknown_model")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One error, classified: ``type`` is the ``error.type`` value of the span."""

    category: Category
    severity: Severity
    type: str
    message: str = field(default="", compare=False)


@dataclass(slots=True)
class CallRecord:
    """One accounted call: what metrics, alerts and the call store receive, exactly once per call.

    Treat it as immutable; observers share the same instance.
    """

    call: LLMCall
    cost: Cost | None
    """None for operations that are not priced (retrieval, tools, workflows)."""
    error: ErrorInfo | None
    end_time_s: float
    """Unix time in seconds when the call ended."""
    trace_id: str | None = None
    """32 lower-case hex digits, when the call had a valid span context."""
    span_id: str | None = None
    service: str | None = None
