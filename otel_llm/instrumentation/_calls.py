"""One instrumented SDK call, whichever library and method: the wrapper all table rows share.

A :class:`Kind` says how one method maps (operation, request, response, stream); :func:`wrap`
turns it into the wrapt wrapper of a table row. Sync and async differ only by ``await``.
The user's exception is re-raised unchanged (after ``Invocation.finish(exc)`` classified it);
a failure of our own mapping is counted and the user's call goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otel_llm import _runtime
from otel_llm.instrumentation._common import (
    Settings,
    Wrapper,
    begin,
    capturing,
    given,
    internal_error,
)
from otel_llm.instrumentation._streams import AsyncStream, StreamState, SyncStream
from otel_llm.invocation import Invocation


@dataclass(frozen=True)
class Kind:
    """How one SDK method maps onto an invocation."""

    operation: str
    provider: str
    """The provider when the client's base URL is not a known one (``openai``, ``anthropic``)."""
    request: Callable[[Call, dict[str, Any]], None]
    response: Callable[[Call, Any], None]
    stream: Callable[[Call], StreamState] | None = None
    include_usage: bool = False
    """Whether a stream may get ``stream_options.include_usage`` (OpenAI chat, completions)."""


class Call:
    """One instrumented call: its invocation, started and made current by the constructor."""

    __slots__ = ("capture", "hide_usage", "invocation", "kind", "runtime", "stream")

    def __init__(self, kind: Kind, settings: Settings, resource: Any,
                 kwargs: dict[str, Any]) -> None:
        self.kind = kind
        self.runtime: _runtime.Runtime = settings.resolve()
        self.stream = kwargs.get("stream") is True and kind.stream is not None
        self.hide_usage = False
        self.capture = False
        self.invocation: Invocation = begin(self.runtime, kind.operation, resource, kwargs,
                                            kind.provider)
        try:
            self.capture = capturing(self.invocation, self.runtime)
            kind.request(self, kwargs)
        except Exception as exc:  # content mapping failed: keep the span, drop the content
            internal_error(self.invocation, f"{kind.provider}.request", exc)
        if (self.stream and kind.include_usage and settings.include_usage
                and not given(kwargs.get("stream_options"))
                and "stream_options" not in (kwargs.get("extra_body") or {})):
            kwargs["stream_options"] = {"include_usage": True}
            self.hide_usage = True

    def failed(self, exc: BaseException) -> None:
        self.invocation.deactivate()
        self.invocation.finish(exc)

    def returned(self, result: Any, stream_type: type, proxy: type) -> Any:
        """What the caller gets: ``result``, or for a stream our transparent wrapper of it."""
        invocation = self.invocation
        invocation.deactivate()
        try:
            if self.stream and self.kind.stream is not None and isinstance(result, stream_type):
                return proxy(result, self.kind.stream(self))
            response = parsed(result)
            if response is not None:
                self.kind.response(self, response)
        except Exception as exc:  # our mapping failed: account what we have, return the result
            internal_error(invocation, f"{self.kind.provider}.response", exc)
        invocation.finish()
        return result


def parsed(result: Any) -> Any:
    """The response model; for ``with_raw_response``, the SDK's cached parse of the read body.

    ``with_streaming_response`` bodies (and raw streams) are the caller's to read: the span
    then ends when the call returns, without usage.
    """
    name = type(result).__name__
    if name == "LegacyAPIResponse":
        return None if getattr(result, "_stream", False) else result.parse()
    if name in ("APIResponse", "AsyncAPIResponse"):
        return None
    return result


def open_call(kind: Kind, settings: Settings, instance: Any,
              kwargs: dict[str, Any]) -> Call | None:
    """A started :class:`Call`, or None when instrumentation is off or our set-up failed."""
    if not settings.enabled():
        return None
    try:
        return Call(kind, settings, instance, kwargs)
    except Exception as exc:  # never let our mapping break the user's call
        internal_error(None, f"{kind.provider}.request", exc)
        return None


def wrap(kind: Kind, is_async: bool,
         stream_types: Callable[[], tuple[type, type]]) -> Callable[[Settings], Wrapper]:
    """The wrapper factory of one table row. ``stream_types()`` gives the SDK's (sync, async)
    stream classes; it is called when the row is patched, so the SDK is importable then."""

    def factory(settings: Settings) -> Wrapper:
        sync_type, async_type = stream_types()
        if is_async:
            async def async_wrapper(wrapped: Callable[..., Any], instance: Any,
                                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                call = open_call(kind, settings, instance, kwargs)
                if call is None:
                    return await wrapped(*args, **kwargs)
                try:
                    result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    call.failed(exc)
                    raise
                return call.returned(result, async_type, AsyncStream)

            return async_wrapper

        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
            call = open_call(kind, settings, instance, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc)
                raise
            return call.returned(result, sync_type, SyncStream)

        return wrapper

    return factory
