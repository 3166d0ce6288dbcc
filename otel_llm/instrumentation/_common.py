"""What the per-library instrumentors share: settings, the patch table, server and request mapping.

Instrumentors contain request/response *mapping* only; spans, metrics and accounting come from
:class:`otel_llm.invocation.Invocation` (DESIGN.md §1). Everything here runs on the user's call
path: it is cheap, and a failure of ours is counted and logged, never raised into the user's
code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,  # its module has a file-level "type: ignore": mypy sees Any
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_llm import _runtime
from otel_llm import semconv as sc
from otel_llm.accounting import Accountant
from otel_llm.core.usage import read_usage
from otel_llm.invocation import Invocation
from otel_llm.version import __version__

ENV_OPENAI_INCLUDE_USAGE = "OTEL_LLM_OPENAI_INCLUDE_USAGE"

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Method = tuple[str, str, Callable[["Settings"], Wrapper]]
"""One row of an instrumentor's table: (module, "Class.method", wrapper factory)."""


@dataclass
class Settings:
    """What one ``instrument()`` call chose. Wrappers read it on every call.

    ``runtime`` is None when ``instrument()`` got no providers: each call then uses
    :func:`otel_llm._runtime.current`, so a later ``configure()`` is honoured. ``active`` turns
    the wrappers of an uninstrumented instrumentor into pass-throughs (see :func:`unpatch`).
    """

    runtime: _runtime.Runtime | None = None
    include_usage: bool = True
    active: bool = True

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Settings:
        """Settings from ``instrument(**kwargs)``: argument, else environment, else default.

        ``runtime=`` is used as given. Otherwise, with ``tracer_provider``/``meter_provider``/
        ``capture_content``, a runtime is built from them that keeps the installed runtime's
        accountant when it records to the same meter provider (as under ``configure(
        instrument=True)``), so price overrides, observers and the processor's bookkeeping are
        shared; a different meter provider gets its own accountant with the same prices.
        """
        runtime = kwargs.get("runtime")
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        capture = kwargs.get("capture_content")
        if runtime is None and (tracer_provider or meter_provider or capture is not None):
            runtime = _derived_runtime(tracer_provider, meter_provider, capture)
        include_usage = kwargs.get("include_usage")
        if include_usage is None:
            include_usage = _runtime.env_flag(ENV_OPENAI_INCLUDE_USAGE, default=True)
        return cls(runtime=runtime, include_usage=bool(include_usage))

    def resolve(self) -> _runtime.Runtime:
        return self.runtime or _runtime.current()

    def enabled(self) -> bool:
        """False when uninstrumented or inside ``suppress_instrumentation()``."""
        return self.active and is_instrumentation_enabled()


def _derived_runtime(tracer_provider: Any, meter_provider: Any,
                     capture: bool | None) -> _runtime.Runtime:
    current = _runtime.current()
    accountant = current.accountant
    # The installed accountant already records to this meter provider: share it.
    if meter_provider is not None and meter_provider is not accountant.meter_provider:
        accountant = Accountant(meter_provider=meter_provider, prices=accountant.prices)
    tracer = (trace.get_tracer(_runtime.TRACER_NAME, __version__, tracer_provider)
              if tracer_provider is not None else current.tracer)
    return _runtime.Runtime(
        tracer=tracer,
        accountant=accountant,
        capture_content=current.capture_content if capture is None else bool(capture),
        content_max_length=current.content_max_length,
    )


# --- the patch table ---------------------------------------------------------------------------
@dataclass
class Patches:
    """The wrappers one ``instrument()`` installed, so ``uninstrument()`` removes exactly them."""

    settings: Settings
    applied: list[tuple[type, str, Any, bool]] = field(default_factory=list)


def patch(methods: tuple[Method, ...], settings: Settings) -> Patches:
    """Wrap every method of the table that this version of the library has.

    A row whose module, class or method is missing (an older SDK without the Responses API) is
    skipped, and so skipped again by :func:`unpatch`: the table drives both.
    """
    patches = Patches(settings)
    for module_name, path, make_wrapper in methods:
        class_name, _, attr = path.partition(".")
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):  # this SDK version has no such API: skip the row
            continue
        if not isinstance(owner, type) or not hasattr(owner, attr):
            continue
        had_own = attr in owner.__dict__
        wrapper = wrapt.wrap_function_wrapper(owner, attr, make_wrapper(settings))
        patches.applied.append((owner, attr, wrapper, had_own))
    return patches


def unpatch(patches: Patches) -> None:
    """Remove the wrappers of :func:`patch`.

    If another library wrapped the method on top of ours since, removing ours would drop
    theirs too: ours stays in the chain but becomes a pass-through (``settings.active``), so a
    later ``instrument()`` never produces a second span for one call.
    """
    patches.settings.active = False
    for owner, attr, wrapper, had_own in reversed(patches.applied):
        if owner.__dict__.get(attr) is not wrapper:
            continue
        if had_own:
            setattr(owner, attr, wrapper.__wrapped__)
        else:
            delattr(owner, attr)
    patches.applied.clear()


class TableInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # Any, see the import
    """A ``BaseInstrumentor`` whose patches come from one table, ``_methods``.

    ``instrument()`` wraps each row that exists in the installed library version and
    ``uninstrument()`` removes exactly those, so the two cannot drift. Settings come from the
    ``instrument()`` keyword arguments (see :meth:`Settings.from_kwargs`), never from class
    attributes.
    """

    _methods: tuple[Method, ...] = ()
    _patches: Patches | None = None

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = patch(self._methods, Settings.from_kwargs(kwargs))

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patches is not None:
            unpatch(self._patches)
            self._patches = None


# --- server and provider from the client's base URL ------------------------------------------
# Exact hosts, then suffixes; anything else keeps the library's own provider (an
# OpenAI-compatible vLLM, Ollama or LiteLLM proxy on localhost stays "openai").
_HOST_PROVIDERS: Mapping[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.perplexity.ai": "perplexity",
}
_SUFFIX_PROVIDERS: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("-aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".amazonaws.com", "aws.bedrock"),
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class Server:
    address: str | None
    port: int | None
    provider: str


_servers: dict[int, tuple[object, str, Server]] = {}


def server_of(resource: object, default_provider: str) -> Server:
    """``server.address``/``server.port`` and the provider for an SDK resource's client.

    Memoized per base-URL object (checked by identity, so a reused id cannot alias), because
    parsing the URL on every call would cost more than the rest of the mapping.
    """
    client = getattr(resource, "_client", None)
    url = getattr(client, "_base_url", None) or getattr(client, "base_url", None)
    if url is None:
        return Server(None, None, default_provider)
    cached = _servers.get(id(url))
    if cached is not None and cached[0] is url and cached[1] == default_provider:
        return cached[2]
    server = _server(url, client, default_provider)
    if len(_servers) > 256:  # clients are few; a process creating thousands must not leak
        _servers.clear()
    _servers[id(url)] = (url, default_provider, server)
    return server


def _server(url: Any, client: object, default_provider: str) -> Server:
    host = getattr(url, "host", None)
    host = host.lower() if isinstance(host, str) and host else None
    port = getattr(url, "port", None)
    if not isinstance(port, int):
        port = _DEFAULT_PORTS.get(str(getattr(url, "scheme", "")).lower())
    provider = _HOST_PROVIDERS.get(host or "")
    if provider is None and host:
        provider = next((p for suffix, p in _SUFFIX_PROVIDERS if host.endswith(suffix)), None)
    if provider is None and type(client).__name__.startswith("Azure"):
        provider = "azure.ai.openai"  # a custom domain in front of Azure OpenAI
    return Server(host, port, provider or default_provider)


# --- request and response mapping shared by the libraries ------------------------------------
def given(value: object) -> bool:
    """Whether a keyword argument was really given (the SDKs use NotGiven/Omit sentinels)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


_NUMBER_PARAMS: tuple[tuple[str, str], ...] = (
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY),
)
_INT_PARAMS: tuple[tuple[str, str], ...] = (
    ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_output_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("top_k", sc.GEN_AI_REQUEST_TOP_K),
    ("seed", sc.GEN_AI_REQUEST_SEED),
    ("n", sc.GEN_AI_REQUEST_CHOICE_COUNT),
)


_PARAM_NAMES = frozenset(
    [name for name, _ in _NUMBER_PARAMS + _INT_PARAMS] + ["stop", "stop_sequences", "stream"]
)


def request_attributes(kwargs: Mapping[str, Any], server: Server) -> dict[str, Any]:
    """The ``gen_ai.request.*`` and ``server.*`` attributes of a call's keyword arguments.

    Only well-typed values are kept: a sentinel, a None or a wrong type sets nothing.
    """
    attrs: dict[str, Any] = {}
    if server.address:
        attrs[sc.SERVER_ADDRESS] = server.address
        if server.port:
            attrs[sc.SERVER_PORT] = server.port
    # Most calls pass few of these: one set intersection spares a lookup per known name.
    given_names = kwargs.keys() & _PARAM_NAMES
    if not given_names:
        return attrs
    for name, key in _NUMBER_PARAMS:
        if name in given_names:
            value = kwargs[name]
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[key] = float(value)
    for name, key in _INT_PARAMS:
        if name in given_names:
            value = kwargs[name]
            if isinstance(value, int) and not isinstance(value, bool):
                attrs[key] = value
    stop = kwargs.get("stop", kwargs.get("stop_sequences"))
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


def begin(
    runtime: _runtime.Runtime,
    operation: str,
    resource: object,
    kwargs: Mapping[str, Any],
    default_provider: str,
) -> Invocation:
    """Start and activate the invocation of one SDK call (made current around the HTTP call).

    Activating marks the context as accounted, so a span the SDK itself emits under ours (the
    anthropic SDK traces itself) is not accounted a second time by the processor.
    """
    server = server_of(resource, default_provider)
    model = kwargs.get("model")
    invocation = Invocation(
        operation,
        provider=server.provider,
        model=model if isinstance(model, str) and model else None,
        attributes=request_attributes(kwargs, server),
        runtime=runtime,
    )
    invocation.start()
    invocation.activate()
    return invocation


def record_usage(invocation: Invocation, usage: object) -> None:
    """Record a usage object or dict (``response.usage``) of any shape the core reads."""
    found = read_usage(usage)
    if found is not None:
        invocation.record_usage(found.input_tokens, found.output_tokens,
                                found.cache_read_tokens, found.cache_creation_tokens,
                                found.reasoning_tokens)


def record_model(invocation: Invocation, response: Any, finish_reasons: list[str] | None) -> None:
    """Usage, model and id of an SDK response model (attribute reads only: the hot path).

    Usage goes through the core's :func:`~otel_llm.core.usage.read_usage`, which knows every
    shape.
    """
    usage = getattr(response, "usage", None)
    if usage is not None:
        record_usage(invocation, usage)
    model = getattr(response, "model", None)
    response_id = getattr(response, "id", None)
    invocation.set_response(model=model if isinstance(model, str) and model else None,
                            finish_reasons=finish_reasons or None,
                            response_id=response_id if isinstance(response_id, str) else None)


def get(obj: object, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: request params are dicts, responses are models."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def items(value: object) -> list[Any] | tuple[Any, ...]:
    """``value`` if it is a list or tuple, else empty: a generator the user passed as request
    content must reach the SDK unconsumed, so we never iterate one."""
    return value if isinstance(value, list | tuple) else ()


def capturing(invocation: Invocation, runtime: _runtime.Runtime) -> bool:
    """Whether to build content for this call: capture on and the span recording."""
    return runtime.capture_content and invocation.span.is_recording()


def internal_error(invocation: Invocation | None, where: str, exc: BaseException) -> None:
    """Count and log (once) a failure of our mapping; the user's call goes on."""
    runtime = invocation._runtime if invocation is not None else _runtime.current()
    runtime.accountant.internal_error(where, exc)
