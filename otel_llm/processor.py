"""LLMSpanProcessor: cost and error category for GenAI spans that other instrumentations made."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from otel_llm import _runtime
from otel_llm.accounting import Accountant
from otel_llm.core.enrich import assess
from otel_llm.core.normalize import is_genai, normalize
from otel_llm.core.types import CallRecord
from otel_llm.invocation import ACCOUNTED_KEY, Invocation


class LLMSpanProcessor(SpanProcessor):
    """Wraps downstream processors; hands them an enriched copy of foreign GenAI spans.

    The SDK freezes a span's attributes before any processor runs, so for a GenAI span from
    another instrumentation (official openai-v2, OpenLLMetry, OpenLIT, OpenInference, the
    anthropic SDK's own tracing) this processor accounts the call and passes the downstream
    processors a copy carrying ``otel_llm.cost.*`` and the error category. Our own spans, spans
    that are not GenAI, and foreign spans of a call our hooks already accounted pass through
    untouched. ``on_end`` runs on the thread that ends the span: it never blocks (beyond the
    downstream processors) and never raises.
    """

    def __init__(self, *processors: SpanProcessor, accountant: Accountant | None = None) -> None:
        self._processors = processors
        self._accountant = accountant

    @property
    def accountant(self) -> Accountant:
        return self._accountant or _runtime.current().accountant

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            invocation = otel_context.get_value(ACCOUNTED_KEY, parent_context)
            if isinstance(invocation, Invocation) and not _ours(span):
                # Started inside one of our invocations: if it is the same operation, it is the
                # same call, accounted there (checked in on_end, once the span says what it is).
                self.accountant.cover(span.get_span_context().span_id, invocation.operation)
        except Exception as exc:  # never break the caller's span
            self.accountant.internal_error("processor.on_start", exc)
        for processor in self._processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        out = span
        try:
            # Our own spans (every hooked call) pass straight through: they were accounted and
            # enriched before they ended, and on_start never marks them.
            if not _ours(span):
                out = self._enrich(span)
        except Exception as exc:  # never break the caller; export the span as it was
            self.accountant.internal_error("processor.on_end", exc)
        for processor in self._processors:
            processor.on_end(out)

    def _enrich(self, span: ReadableSpan) -> ReadableSpan:
        ctx = span.get_span_context()
        accountant = self.accountant
        # Always take the mark, so spans marked in on_start never pile up.
        covered_by = accountant.take_covered(ctx.span_id) if ctx is not None else None
        attributes = span.attributes or {}
        if not is_genai(attributes):
            return span
        duration = None
        if span.start_time is not None and span.end_time is not None:
            duration = (span.end_time - span.start_time) / 1e9
        call = normalize(
            attributes,
            span_name=span.name,
            duration_s=duration,
            status_is_error=span.status.status_code is StatusCode.ERROR,
            resource=span.resource.attributes if span.resource else None,
        )
        if call is None or call.operation == covered_by:
            return span
        assessment = assess(call, accountant.prices)
        accountant.account(
            CallRecord(
                call=call,
                cost=assessment.cost,
                error=assessment.error,
                end_time_s=(span.end_time or 0) / 1e9,
                trace_id=f"{ctx.trace_id:032x}" if ctx is not None else None,
                span_id=f"{ctx.span_id:016x}" if ctx is not None else None,
                service=_service(span),
            )
        )
        missing = {k: v for k, v in assessment.attributes.items() if k not in attributes}
        if not missing:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes={**attributes, **missing},
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)


def _ours(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == _runtime.TRACER_NAME


def _service(span: ReadableSpan) -> str | None:
    name = span.resource.attributes.get("service.name") if span.resource else None
    return name if isinstance(name, str) else None
