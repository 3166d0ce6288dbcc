"""Transparent wrappers around the streams the SDKs return (sync and async, openai and anthropic).

The wrapper is a :class:`wrapt.ObjectProxy`: ``isinstance(stream, openai.Stream)`` still holds,
attributes (``response``, ``_observer``, …) reach the SDK's stream, and the SDKs' helpers that
consume a raw stream (``ChatCompletionStream``, anthropic's ``MessageStream`` with
``text_stream``, ``get_final_message()``, ``until_done()``) iterate through the wrapper.

Contract: the invocation ends exactly once — when the stream is exhausted, raises midway,
is closed, its ``with`` block exits, or the wrapper is garbage-collected unconsumed (a
``weakref.finalize``); a ``break`` out of the loop ends it at the next of those. The
provider-specific :class:`StreamState` sees every chunk and may hide one from the user (the
usage-only chunk that we requested on the user's behalf).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import wrapt

from otel_llm.invocation import Invocation


class StreamState:
    """What one stream accumulates; subclasses map their provider's chunks.

    :meth:`observe` runs for every chunk on the user's iteration path: it must be cheap and
    returns whether the chunk is handed to the user; the wrappers call it through
    :meth:`deliver`, which hands the chunk over whatever our code does. :meth:`complete` moves
    what was accumulated into the invocation just before it finishes.
    """

    __slots__ = ("done", "first", "invocation", "observing")

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        self.first = True
        self.done = False
        self.observing = True

    def observe(self, chunk: Any) -> bool:
        return True

    def complete(self) -> None:
        """Record the accumulated response (usage, model, finish reasons, content)."""

    def deliver(self, chunk: Any) -> bool:
        """Whether ``chunk`` goes to the user: :meth:`observe`, guarded. Shared by the sync and
        async wrappers, which differ only in how they fetch the next chunk."""
        if not self.observing:
            return True
        try:
            return self.observe(chunk)
        except Exception as exc:  # our mapping must never break the user's iteration
            self.failed(exc)
            return True

    def failed(self, exc: Exception) -> None:
        """Our :meth:`observe` raised: count it once and stop observing this stream."""
        self.observing = False
        self.invocation._runtime.accountant.internal_error("stream.observe", exc)

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the invocation once, with what the stream delivered so far."""
        if self.done:
            return
        self.done = True
        try:
            self.complete()
        except Exception as internal:  # keep the accounting even if the mapping failed
            self.invocation._runtime.accountant.internal_error("stream.complete", internal)
        self.invocation.finish(exc)


def _chunks(iterator: Iterator[Any], state: StreamState, owner: object) -> Iterator[Any]:
    """The chunks that ``state`` hands to the user; the end of the SDK's stream (exhausted or
    raising) ends the invocation. Closing this generator (a ``break``) does not: the stream may
    be iterated on, so close, exit and collection of the wrapper do.

    ``owner``, the wrapper, is held for as long as the loop runs: ``for c in client...create(
    ..., stream=True)`` keeps no other reference to it, and its collection ends the invocation.
    """
    try:
        for chunk in iterator:
            if state.deliver(chunk):
                yield chunk
    except GeneratorExit:  # this generator closed (a break): not the stream's end
        raise
    except BaseException as exc:  # the SDK's stream raised midway (or the caller threw in)
        state.end(exc)
        raise
    state.end()


class SyncStream(wrapt.ObjectProxy[Any]):
    """A sync SDK stream whose chunks a :class:`StreamState` observes (see the module doc)."""

    def __init__(self, stream: Any, state: StreamState) -> None:
        super().__init__(stream)
        self._self_state = state
        self._self_iterator: Iterator[Any] | None = None
        self._self_chunks: Iterator[Any] | None = None
        # Holds the state, not the proxy: ends the invocation if the proxy is dropped.
        self._self_finalizer = weakref.finalize(self, state.end)

    def __iter__(self) -> Iterator[Any]:
        # A generator over the SDK's one iterator, as the SDK's own ``Stream.__iter__`` returns:
        # a chunk then costs a generator resume, not a Python-level ``__next__`` call.
        return _chunks(self._sdk_iterator(), self._self_state, self)

    def __next__(self) -> Any:
        chunks = self._self_chunks
        if chunks is None:
            # The caller holds the wrapper: this generator must not (a cycle would postpone the
            # end-on-collection to the next garbage collection).
            chunks = self._self_chunks = _chunks(self._sdk_iterator(), self._self_state, None)
        return next(chunks)

    def _sdk_iterator(self) -> Iterator[Any]:
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = iter(self.__wrapped__)
        return iterator

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.end()

    def __enter__(self) -> SyncStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        # An exception raised by the user's own code inside the block is not the call's error.
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.end()


class AsyncStream(wrapt.ObjectProxy[Any]):
    """An async SDK stream whose chunks a :class:`StreamState` observes (see the module doc)."""

    def __init__(self, stream: Any, state: StreamState) -> None:
        super().__init__(stream)
        self._self_state = state
        self._self_iterator: Any = None
        self._self_finalizer = weakref.finalize(self, state.end)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = self.__wrapped__.__aiter__()
        state = self._self_state
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                state.end()
                raise
            except BaseException as exc:
                state.end(exc)
                raise
            if state.deliver(chunk):
                return chunk

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_state.end()

    async def aclose(self) -> None:
        wrapped = self.__wrapped__
        try:
            await (wrapped.aclose() if hasattr(wrapped, "aclose") else wrapped.close())
        finally:
            self._self_state.end()

    async def __aenter__(self) -> AsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.end()
