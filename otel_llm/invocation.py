"""The invocation layer: one GenAI operation as a span plus exactly one accounting of the call.

Every host of ours — the manual hooks, the auto-instrumentors — goes through
:class:`Invocation`, which sets the DESIGN.md §3 attributes *before* ``span.end()`` (so cost and
error category reach any exporter) and accounts the call once, whether or not the span was
sampled. A failure of ours is logged once and counted, never raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm._records import record_exception_event, record_response
from otel_llm.core.enrich import assess
from otel_llm.core.errors import classify_exception
from otel_llm.core.normalize import is_genai
from otel_llm.core.redact import redact
from otel_llm.core.types import CallRecord, ErrorInfo, LLMCall

__all__ = ["ACCOUNTED_KEY", "Invocation"]

# Holds the current Invocation while it is active. A GenAI span of the same operation started
# below it — by another instrumentation, or by one of our own instrumentors under a manual hook —
# describes the same call, which must be accounted once.
ACCOUNTED_KEY = otel_context.create_key("otel_llm.accounted")

_REQUEST_PARAMS: Mapping[str, str] = {
    "max_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
    "top_k": sc.GEN_AI_REQUEST_TOP_K,
    "frequency_penalty": sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "stop": sc.GEN_AI_REQUEST_STOP_SEQUENCES,
    "stop_sequences": sc.GEN_AI_REQUEST_STOP_SEQUENCES,
    "seed": sc.GEN_AI_REQUEST_SEED,
    "n": sc.GEN_AI_REQUEST_CHOICE_COUNT,
    "stream": sc.GEN_AI_REQUEST_STREAM,
    "server_address": sc.SERVER_ADDRESS,
    "server_port": sc.SERVER_PORT,
    "project": sc.OTEL_LLM_PROJECT_ID,
    "project_id": sc.OTEL_LLM_PROJECT_ID,
}
_TOKEN_LIMIT = 10**12
_MAX_DOCUMENT_IDS = 100
_I = TypeVar("_I", bound="Invocation")


class Invocation:
    """One GenAI operation: a span plus exactly one accounting of the call.

    Use as a sync or async context manager. Instrumentors use the lower-level
    :meth:`start`, :meth:`activate`/:meth:`deactivate` and :meth:`finish` so a stream can end the
    span after the call returned. :meth:`finish` is idempotent: the span ends exactly once.
    """

    def __init__(
        self,
        operation: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        name: str | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        attributes: Mapping[str, Any] | None = None,
        runtime: _runtime.Runtime | None = None,
        require_model: bool = False,
    ) -> None:
        self._runtime = runtime or _runtime.current()
        self.operation = operation
        self.provider = _clean_name(self, "provider", provider, require_model)
        self.request_model = _clean_name(self, "model", model, require_model)
        self.response_model: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self.reasoning_tokens = 0
        self.time_to_first_chunk_s: float | None = None
        self.documents: int | None = None
        self.document_ids: tuple[str, ...] = ()
        self.error: ErrorInfo | None = None
        self._name = name or (f"{operation} {self.request_model}" if self.request_model
                              else operation)
        self._kind = kind
        # What was set after start (None before): the span has the rest since start_span.
        self._late: dict[str, Any] | None = None
        self._attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation}
        if self.provider:
            self._attributes[sc.GEN_AI_PROVIDER_NAME] = self.provider
        if self.request_model:
            self._attributes[sc.GEN_AI_REQUEST_MODEL] = self.request_model
        if attributes:
            self.set_attributes(attributes)
        self.span: Span = trace.INVALID_SPAN
        self._start_ns = 0
        self._token: object | None = None
        self._done = False
        # Our own invocation of the same operation that encloses this one (a manual llm_call
        # around an instrumented client call): this one accounts the call, the outer does not.
        self._outer: Invocation | None = None
        self._superseded = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Invocation:
        self._start_ns = time.perf_counter_ns()
        try:
            # One context lookup serves the enclosing invocation, the parent and the tracer.
            ctx = otel_context.get_current()
            enclosing = otel_context.get_value(ACCOUNTED_KEY, ctx)
            if isinstance(enclosing, Invocation) and enclosing.operation == self.operation:
                self._outer = enclosing
            parent = trace.get_current_span(ctx)
            if parent.is_recording():
                self._cover_foreign_parent(parent)
            self._late = {}
            self.span = self._runtime.tracer.start_span(
                self._name, ctx, kind=self._kind, attributes=dict(self._attributes)
            )
        except Exception as exc:  # never let tracing break the user's call
            self._runtime.accountant.internal_error("hooks.start", exc)
        return self

    def activate(self) -> None:
        """Make the span current (and this invocation the accounting one) until
        :meth:`deactivate`."""
        ctx = trace.set_span_in_context(self.span)
        self._token = otel_context.attach(otel_context.set_value(ACCOUNTED_KEY, self, ctx))

    def deactivate(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def __enter__(self: _I) -> _I:
        self.start()
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()
        self.finish(exc)

    async def __aenter__(self: _I) -> _I:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- what the caller tells us ------------------------------------------------------------
    def record_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """Record token usage. ``input_tokens`` *includes* the cached ones, as in the spec.

        Invalid values (negative, non-integer, NaN, absurdly large) are ignored, counted and
        logged once; they never raise.
        """
        self.input_tokens = self._tokens("input_tokens", input_tokens)
        self.output_tokens = self._tokens("output_tokens", output_tokens)
        self.cache_read_tokens = self._tokens("cached_input_tokens", cached_input_tokens) or 0
        self.cache_creation_tokens = (
            self._tokens("cache_creation_input_tokens", cache_creation_input_tokens) or 0
        )
        self.reasoning_tokens = self._tokens("reasoning_tokens", reasoning_tokens) or 0
        cached = self.cache_read_tokens + self.cache_creation_tokens
        if self.input_tokens is not None and cached > self.input_tokens:
            self._runtime.accountant.invalid(
                "cached_input_tokens",
                "otel-llm: cached tokens (%d) exceed input_tokens (%d); input_tokens must "
                "include cached tokens",
                cached,
                self.input_tokens,
            )
            self.input_tokens += cached

    def set_response(
        self,
        model: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        response_id: str | None = None,
    ) -> None:
        if model:
            self.response_model = _clean_name(self, "response model", model)
        if finish_reasons:
            self._set(sc.GEN_AI_RESPONSE_FINISH_REASONS, list(map(str, finish_reasons)))
        if response_id:
            self._set(sc.GEN_AI_RESPONSE_ID, str(response_id))

    def record_response(self, response: object) -> None:
        """Copy usage, model, id and finish reasons from an OpenAI/Anthropic-shaped response."""
        record_response(self, response)

    def record_first_chunk(self) -> None:
        """Mark the arrival of the first streamed chunk (time to first chunk)."""
        if self.time_to_first_chunk_s is None and self._start_ns:
            self.time_to_first_chunk_s = (time.perf_counter_ns() - self._start_ns) / 1e9

    def set_attribute(self, key: str, value: Any) -> None:
        if value is not None:
            self._set(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            if value is not None:
                self._set(_REQUEST_PARAMS.get(key, key), value)

    def set_content(self, key: str, text: str) -> None:
        """Record prompt/response content, only when capture is on, and always redacted."""
        if self._runtime.capture_content:
            self._set(key, redact(text, self._runtime.content_max_length))

    def _set(self, key: str, value: Any) -> None:
        self._attributes[key] = value
        late = self._late
        if late is not None:
            late[key] = value

    def fail(self, error: ErrorInfo) -> None:
        """Mark the call failed without an exception (e.g. an error reported in a response)."""
        self.error = error

    # -- the end -----------------------------------------------------------------------------
    def finish(self, exc: BaseException | None = None) -> None:
        """End the span and account the call, exactly once. Never raises."""
        if self._done:
            return
        self._done = True
        try:
            self._finish(exc)
        except Exception as internal:  # our bug: count it, keep the user's call intact
            self._runtime.accountant.internal_error("hooks.finish", internal)
            self.span.end()

    def _finish(self, exc: BaseException | None) -> None:
        # On the caller's path for every call: locals over repeated attribute reads, plain
        # statements over helper calls and comprehensions.
        start_ns = self._start_ns
        duration_s = (time.perf_counter_ns() - start_ns) / 1e9 if start_ns else None
        if exc is not None:
            self.error = classify_exception(exc)
        error = self.error
        attributes = self._attributes
        call = LLMCall(
            operation=self.operation,
            provider=self.provider,
            request_model=self.request_model,
            response_model=self.response_model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens,
            reasoning_tokens=self.reasoning_tokens,
            duration_s=duration_s,
            time_to_first_chunk_s=self.time_to_first_chunk_s,
            is_error=error is not None,
            error_type=error.type if error is not None else None,
            project=_str_or_none(attributes.get(sc.OTEL_LLM_PROJECT_ID)),
            server_address=_str_or_none(attributes.get(sc.SERVER_ADDRESS)),
            server_port=_port_or_none(attributes.get(sc.SERVER_PORT)),
            data_source=_str_or_none(attributes.get(sc.GEN_AI_DATA_SOURCE_ID)),
            retrieval_documents=self.documents,
            document_ids=self.document_ids,
        )
        if self._superseded:
            # An inner invocation of ours accounted (and priced) this very call: this span
            # keeps what it was told, without a second cost or a second accounting.
            self._end_unaccounted(exc)
            return
        accountant = self._runtime.accountant
        assessment = assess(call, accountant.prices, error)
        if self._outer is not None:
            self._outer._superseded = True
        span = self.span
        if span.is_recording():
            span.set_attributes(self._end_attributes(assessment.attributes))
            if exc is not None:
                record_exception_event(span, exc)
            if assessment.error is not None:
                span.set_status(Status(StatusCode.ERROR, assessment.error.message or None))
        ctx = span.get_span_context()
        valid = ctx.is_valid
        accountant.account(
            CallRecord(
                call=call,
                cost=assessment.cost,
                error=assessment.error,
                end_time_s=time.time(),
                # The same digits as f"{id:032x}" / f"{id:016x}", at a third of the cost.
                trace_id=ctx.trace_id.to_bytes(16, "big").hex() if valid else None,
                span_id=ctx.span_id.to_bytes(8, "big").hex() if valid else None,
            )
        )
        span.end()

    def _end_attributes(self, assessed: Mapping[str, Any]) -> dict[str, Any]:
        """What the span learns at the end: what is new since start, usage, and ``assessed``."""
        attrs = self._new_attributes()
        if self.response_model is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.input_tokens is not None:
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cache_read_tokens:
            attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
        if self.cache_creation_tokens:
            attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = self.cache_creation_tokens
        if self.reasoning_tokens:
            attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
        if self.time_to_first_chunk_s is not None:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.time_to_first_chunk_s
        attrs.update(assessed)
        return attrs

    def _end_unaccounted(self, exc: BaseException | None) -> None:
        """End the span with its attributes and error status, without cost or accounting."""
        span = self.span
        if span.is_recording():
            span.set_attributes(self._new_attributes())
            if exc is not None:
                error = self.error or classify_exception(exc)
                span.set_attributes({sc.ERROR_TYPE: error.type,
                                     sc.OTEL_LLM_ERROR_CATEGORY: error.category,
                                     sc.OTEL_LLM_ERROR_SEVERITY: error.severity})
                record_exception_event(span, exc)
                span.set_status(Status(StatusCode.ERROR, error.message or None))
        span.end()

    # -- helpers -----------------------------------------------------------------------------
    def _new_attributes(self) -> dict[str, Any]:
        """A copy of the attributes set since start (those given at start are on the span)."""
        late = self._late
        return dict(late if late is not None else self._attributes)

    def _tokens(self, field: str, value: object) -> int | None:
        if type(value) is int and 0 <= value < _TOKEN_LIMIT:
            return value  # the common case, checked first
        if value is None:
            return None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _TOKEN_LIMIT:
            self._runtime.accountant.invalid(
                field, "otel-llm: ignoring invalid %s=%r (want an integer >= 0)", field, value
            )
            return None
        return value

    def _cover_foreign_parent(self, parent: Span) -> None:
        scope = getattr(parent, "instrumentation_scope", None)
        attributes = getattr(parent, "attributes", None)
        if scope is None or scope.name == _runtime.TRACER_NAME or attributes is None:
            return
        if is_genai(attributes):
            self._runtime.accountant.cover(parent.get_span_context().span_id, self.operation)


def _clean_name(
    invocation: Invocation, field: str, value: object, required: bool = False
) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped:
            return stripped
    elif value is None and not required:
        return None
    invocation._runtime.accountant.invalid(
        field, "otel-llm: ignoring invalid %s=%r (want a non-empty string)", field, value
    )
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _port_or_none(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 65536 else None
