"""Manual hooks: context managers and a decorator that turn a block of code into a GenAI span.

Each is an :class:`~otel_llm.invocation.Invocation`: the DESIGN.md §3 attributes are set before
``span.end()`` and the call is accounted once, sampled or not. The user's exception is re-raised
untouched; a failure of ours is logged once and counted, never raised.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from otel_llm import semconv as sc
from otel_llm._records import record_response
from otel_llm.core.types import LLMCall
from otel_llm.invocation import _MAX_DOCUMENT_IDS, ACCOUNTED_KEY, Invocation

__all__ = ["ACCOUNTED_KEY", "Invocation", "LLMCall", "embedding", "llm_call", "rag_pipeline",
           "record_response", "rerank", "retrieval", "trace_llm"]


# --- public hooks --------------------------------------------------------------------------------
def llm_call(
    provider: str, model: str, operation: str = sc.OP_CHAT, **request_params: Any
) -> Invocation:
    """A chat / completion call: ``with llm_call("openai", "gpt-4o") as call: ...``.

    ``request_params`` are the request's parameters (``temperature``, ``max_tokens``, ``top_p``,
    ``stop``, ``seed``, …) and optionally ``server_address`` and ``project``.
    """
    return Invocation(operation, provider=provider, model=model, attributes=request_params,
                      require_model=True)


def embedding(provider: str, model: str, **request_params: Any) -> Invocation:
    """An embeddings call; record its usage with ``record_usage(input_tokens=...)``."""
    return Invocation(sc.OP_EMBEDDINGS, provider=provider, model=model,
                      attributes=request_params, require_model=True)


class Retrieval(Invocation):
    """A retrieval from a vector store / search index."""

    def record_documents(self, documents: Iterable[tuple[Any, float | None]]) -> None:
        """Record the retrieved ``(id, score)`` pairs: their count and the top score."""
        try:
            docs = list(documents)
            scores = [float(s) for _, s in docs if isinstance(s, int | float)]
            self.documents = len(docs)
            # Kept for RAG feedback (precision/recall against what was retrieved), not exported.
            self.document_ids = tuple(str(doc_id) for doc_id, _ in docs[:_MAX_DOCUMENT_IDS])
            self.set_attribute(sc.OTEL_LLM_RETRIEVAL_DOCUMENTS_COUNT, len(docs))
            finite = [s for s in scores if math.isfinite(s)]
            if finite:
                self.set_attribute(sc.OTEL_LLM_RETRIEVAL_TOP_SCORE, max(finite))
        except Exception as exc:  # a malformed argument must not break the user's retrieval
            self._runtime.accountant.invalid(
                "documents", "otel-llm: ignoring invalid documents (%r)", exc
            )


def retrieval(data_source: str, top_k: int | None = None, query: str | None = None,
              **attributes: Any) -> Retrieval:
    """A retrieval: ``with retrieval("kb-docs", top_k=5, query=q) as r: r.record_documents(...)``.

    The query text is recorded only when content capture is on, and redacted.
    """
    inv = Retrieval(
        sc.OP_RETRIEVAL,
        name=f"{sc.OP_RETRIEVAL} {data_source}",
        attributes={sc.GEN_AI_DATA_SOURCE_ID: data_source, sc.GEN_AI_RETRIEVAL_TOP_K: top_k,
                    **attributes},
    )
    if query is not None:
        inv.set_content(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, query)
    return inv


def rerank(provider: str, model: str, top_n: int | None = None, **attributes: Any) -> Invocation:
    """A rerank call (operation ``rerank``, ours)."""
    return Invocation(sc.OP_RERANK, provider=provider, model=model,
                      attributes={sc.OTEL_LLM_RERANK_TOP_N: top_n, **attributes},
                      require_model=True)


class _Pipeline(Invocation):
    def _finish(self, exc: BaseException | None) -> None:
        # A workflow is a parent span, not a call: no accounting, just status.
        self._end_unaccounted(exc)

    def activate(self) -> None:
        # Children of a pipeline are separate calls: do not mark the context as accounted.
        self._token = otel_context.attach(trace.set_span_in_context(self.span))


def rag_pipeline(name: str, **attributes: Any) -> Invocation:
    """The INTERNAL parent span of a RAG pipeline (``invoke_workflow``)."""
    return _Pipeline(
        sc.OP_INVOKE_WORKFLOW,
        name=f"{sc.OP_INVOKE_WORKFLOW} {name}",
        kind=SpanKind.INTERNAL,
        attributes={sc.GEN_AI_WORKFLOW_NAME: name, **attributes},
    )


F = TypeVar("F", bound=Callable[..., Any])


def trace_llm(
    provider: str, model: str | None = None, operation: str = sc.OP_CHAT
) -> Callable[[F], F]:
    """Decorate a function that calls an LLM and returns an OpenAI/Anthropic-shaped response.

    Usage, response model, id and finish reasons are read from the returned object (or dict).
    The model defaults to the call's ``model=`` keyword argument.
    """

    def decorate(func: F) -> F:
        def open_call(kwargs: Mapping[str, Any]) -> Invocation:
            name = model or kwargs.get("model")
            return Invocation(operation, provider=provider,
                              model=name if isinstance(name, str) else None)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with open_call(kwargs) as call:
                    result = await func(*args, **kwargs)
                    record_response(call, result)
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with open_call(kwargs) as call:
                result = func(*args, **kwargs)
                record_response(call, result)
                return result

        return cast(F, wrapper)

    return decorate
