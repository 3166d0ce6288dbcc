"""Accounted-call builders for the store and API tests, and a seeded random workload."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

from otel_llm.core.types import CallRecord, Cost, ErrorInfo, LLMCall

# error.type -> (category, severity), as DESIGN.md §8 maps them.
ERRORS = {
    "rate_limit": ("resource_error", "high"),
    "timeout": ("external_service", "high"),
    "server_error": ("external_service", "high"),
    "authentication": ("authentication", "critical"),
    "invalid_request": ("validation", "low"),
    "content_filter": ("business_logic", "medium"),
}
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku"))
PROJECTS = ("search", "support", None)


@dataclass(slots=True)
class DocCall(LLMCall):
    """An LLMCall with the proposed ``document_ids`` field (retrieved ids in rank order)."""

    document_ids: tuple[str, ...] = ()


def ms(text: str) -> int:
    """``2025-03-15T12:00:00.000`` (UTC) as Unix milliseconds."""
    dt = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def make_record(
    time_ms: int,
    *,
    provider: str | None = "openai",
    model: str | None = "gpt-4o",
    operation: str = "chat",
    project: str | None = None,
    input_tokens: int | None = 100,
    output_tokens: int | None = 20,
    cost_usd: float | None = 0.001,
    unpriced: bool = False,
    duration_ms: float | None = 250.0,
    error_type: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    service: str | None = "rag-api",
    documents: tuple[str, ...] | None = None,
    data_source: str | None = None,
) -> CallRecord:
    """One accounted call that ended at ``time_ms`` (exactly representable in the store)."""
    kind = DocCall if documents is not None else LLMCall
    call = kind(
        operation=operation,
        provider=provider,
        request_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        duration_s=duration_ms / 1000 if duration_ms is not None else None,
        is_error=error_type is not None,
        error_type=error_type,
        project=project,
        data_source=data_source,
        retrieval_documents=len(documents) if documents is not None else None,
    )
    if documents is not None:
        call.document_ids = documents  # type: ignore[attr-defined]
    if unpriced:
        cost: Cost | None = Cost(None, None, None, "unknown_model")
    elif cost_usd is None:
        cost = None
    else:
        cost = Cost(cost_usd, cost_usd * 0.4, cost_usd * 0.6, "price_table")
    error = None
    if error_type is not None:
        category, severity = ERRORS[error_type]
        error = ErrorInfo(category, severity, error_type)  # type: ignore[arg-type]
    return CallRecord(call=call, cost=cost, error=error, end_time_s=time_ms / 1000,
                      trace_id=trace_id, span_id=span_id, service=service)


def workload(seed: int, count: int, start_ms: int, end_ms: int) -> list[CallRecord]:
    """``count`` varied calls at random times in ``[start_ms, end_ms)``: providers, models,
    projects, errors, unpriced models, unknown durations and tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        provider, model = rng.choice(MODELS)
        error_type = rng.choice(list(ERRORS)) if rng.random() < 0.2 else None
        out.append(make_record(
            rng.randrange(start_ms, end_ms),
            provider=provider,
            model=model,
            project=rng.choice(PROJECTS),
            input_tokens=None if rng.random() < 0.05 else rng.randrange(0, 5000),
            output_tokens=None if rng.random() < 0.05 else rng.randrange(0, 800),
            cost_usd=round(rng.uniform(0, 0.05), 6),
            unpriced=rng.random() < 0.05,
            duration_ms=None if rng.random() < 0.05 else round(rng.uniform(5, 9000), 3),
            error_type=error_type,
            trace_id=f"{rng.getrandbits(128) | 1:032x}",
            span_id=f"{rng.getrandbits(64) | 1:016x}",
        ))
    return out
