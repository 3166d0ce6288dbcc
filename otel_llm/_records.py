"""What an invocation copies from objects it did not make: a provider's response, an exception.

Shared by the hooks (``record_response``), the invocation layer and the FastAPI error handler
(``record_exception_event``).
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.trace import Span

from otel_llm.core.redact import redact
from otel_llm.core.usage import usage_from_response

if TYPE_CHECKING:
    from otel_llm.invocation import Invocation

__all__ = ["record_exception_event", "record_response"]


def record_exception_event(span: Span, exc: BaseException) -> None:
    """The ``exception`` event of ``exc`` on ``span``, its message and stack redacted.

    The SDK's ``record_exception`` would export the raw message, which may quote a secret
    (e.g. a rejected API key). Used by the hooks and by the FastAPI error handler.
    """
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    span.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": redact(str(exc), 2048),
            "exception.stacktrace": redact(stack, 16384),
        },
    )


def record_response(call: Invocation, response: object) -> None:
    """Copy usage, model, id and finish reasons from an OpenAI/Anthropic-shaped response."""
    try:
        usage = usage_from_response(response)
        if usage is not None:
            call.record_usage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                              usage.cache_creation_tokens, usage.reasoning_tokens)
        get = (response.get if isinstance(response, Mapping)
               else functools.partial(getattr, response))
        model = get("model", None)
        response_id = get("id", None)
        reasons: list[str] = []
        for choice in get("choices", None) or ():
            reason = (choice.get("finish_reason") if isinstance(choice, Mapping)
                      else getattr(choice, "finish_reason", None))
            if reason:
                reasons.append(str(reason))
        stop_reason = get("stop_reason", None)
        if stop_reason:
            reasons.append(str(stop_reason))
        call.set_response(
            model=model if isinstance(model, str) else None,
            finish_reasons=reasons or None,
            response_id=response_id if isinstance(response_id, str) else None,
        )
    except Exception as exc:  # an odd response object must not break the user's function
        call._runtime.accountant.internal_error("hooks.record_response", exc)
