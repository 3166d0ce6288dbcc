"""Per-call overhead of an instrumented ``openai`` call (BENCHMARKS.md §1). Prints a table.

Workload: the real ``openai`` client, ``chat.completions.create`` over an in-process
``MockTransport`` (``httpx2`` for openai 3.x, ``httpx`` for 2.x), a realistic answer with usage
incl. cached tokens; non-stream, and a 24-chunk stream ending in a usage chunk (the caller sets
``stream_options.include_usage``, so every contender sees the same 24 chunks). Providers, the
same for all: SDK TracerProvider + SimpleSpanProcessor + InMemorySpanExporter, MeterProvider +
InMemoryMetricReader.

Contenders, each in its own worker process (instrumentation patches the SDK process-wide):
``aa`` (uninstrumented again: the noise level), ``span`` (floor: one span, 9 gen_ai attributes
from the response, made current), ``span_metrics`` (floor: the same plus the duration and the
two token-usage histograms by hand), ``ours`` (``OpenAIInstrumentor``: span, standard metrics,
TTFT, cost, error category, cached tokens), and optional anchors run by other interpreters
(``--anchor NAME=PYTHON``: a side venv with that instrumentation installed; see ``ANCHORS``).

Method (the machines are noisy): the parent drives all workers in many short rounds, in a
shuffled order each round; in each round a worker times a block of uninstrumented calls and a
block of contender calls back to back (order alternating), so every contender block has a
baseline next to it in the same process. Reported: the paired difference per call, averaged
over each two rounds (one of each order) and the median of that over the run, and ratios of
medians. Run: ``python bench/bench_openai_overhead.py``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

MODEL = "gpt-4o"
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 1000},
         "completion_tokens_details": {"reasoning_tokens": 0}}
MESSAGES = [{"role": "user", "content": "Summarise the attached policy in two sentences."}]

# Anchor name → how the worker instruments: (module, class) of a BaseInstrumentor, or "openlit".
ANCHORS: dict[str, tuple[str, str]] = {
    "openai_v2": ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),
    "openllmetry": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
    "openinference": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
    "openlit": ("openlit", "init"),
}


def _bodies() -> tuple[bytes, bytes]:
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
              "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1",
              "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                           "message": {"role": "assistant", "content": "A short answer. " * 8}}],
              "usage": USAGE}
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1", "usage": None}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": f"word{i} "},
                                     "finish_reason": None}]} for i in range(21)]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": USAGE})
    assert len(chunks) == 24
    stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return json.dumps(answer).encode(), stream.encode()


def _client() -> Any:
    import openai

    try:
        import httpx2 as httpx_module  # openai 3.x
    except ImportError:
        import httpx as httpx_module  # type: ignore[no-redef]  # openai 1.x/2.x
    answer, stream = _bodies()
    json_headers = {"content-type": "application/json"}
    sse_headers = {"content-type": "text/event-stream"}

    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content.replace(b" ", b""):
            return httpx_module.Response(200, content=stream, headers=sse_headers)
        return httpx_module.Response(200, content=answer, headers=json_headers)

    return openai.OpenAI(api_key="sk-bench", max_retries=0, http_client=openai.DefaultHttpxClient(
        transport=httpx_module.MockTransport(handler)))


# --- the calls ------------------------------------------------------------------------------
def _plain_call(client: Any, stream: bool) -> None:
    if stream:
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}):
            pass
    else:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)


def _floor_call(client: Any, stream: bool, tracer: Any, histograms: Any) -> None:
    """The hand-written floor: one current span, 9 attributes, optionally the 3 records."""
    from opentelemetry import trace

    start = time.perf_counter()
    with tracer.start_as_current_span(f"chat {MODEL}", kind=trace.SpanKind.CLIENT) as span:
        if stream:
            usage = last = None
            for chunk in client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True,
                    stream_options={"include_usage": True}):
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.choices:
                    last = chunk
            model, rid = last.model, last.id
            reasons = [last.choices[0].finish_reason]
        else:
            response = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            usage, model, rid = response.usage, response.model, response.id
            reasons = [c.finish_reason for c in response.choices]
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": MODEL, "gen_ai.response.model": model,
            "gen_ai.response.id": rid, "gen_ai.response.finish_reasons": reasons,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.prompt_tokens_details.cached_tokens,
        })
        if histograms is not None:
            duration, tokens = histograms
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": MODEL, "gen_ai.response.model": model}
            duration.record(time.perf_counter() - start, attrs)
            tokens.record(usage.prompt_tokens, {**attrs, "gen_ai.token.type": "input"})
            tokens.record(usage.completion_tokens, {**attrs, "gen_ai.token.type": "output"})


# --- a worker: one contender, paired with its own baseline ---------------------------------------
class Worker:
    def __init__(self, contender: str, stream: bool) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.stream = stream
        self.client = _client()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.instrumentor: Any = None
        self.contender = self._contender(contender)
        # An instrumentation that cannot be switched off again (its uninstrument leaves spans)
        # cannot give its own baseline: the parent pairs it with the "aa" worker's instead.
        self.sticky = False
        if self.instrumentor is not None:
            self._instrumented(True)
            self._instrumented(False)
            _plain_call(self.client, stream)
            self.sticky = bool(self.exporter.get_finished_spans())
            self.exporter.clear()
            if self.sticky:
                self._instrumented(True)

    def _contender(self, name: str) -> Callable[[], None]:
        client, stream = self.client, self.stream
        if name == "aa":
            return lambda: _plain_call(client, stream)
        if name in ("span", "span_metrics"):
            tracer = self.tracer_provider.get_tracer("floor")
            histograms = None
            if name == "span_metrics":
                from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as m

                meter = self.meter_provider.get_meter("floor")
                histograms = (m.create_gen_ai_client_operation_duration(meter),
                              m.create_gen_ai_client_token_usage(meter))
            return lambda: _floor_call(client, stream, tracer, histograms)
        if name == "ours":
            from otel_llm.instrumentation.openai import OpenAIInstrumentor

            self.instrumentor = OpenAIInstrumentor()
        elif name == "openlit":
            import openlit

            openlit.init(tracer=self.tracer_provider.get_tracer("openlit"),
                         meter=self.meter_provider.get_meter("openlit"), disable_batch=True)
        else:
            module, cls = ANCHORS[name]
            self.instrumentor = getattr(importlib.import_module(module), cls)()
        return lambda: _plain_call(client, stream)

    def _instrumented(self, on: bool) -> None:
        if self.instrumentor is None:
            return
        if on:
            self.instrumentor.instrument(tracer_provider=self.tracer_provider,
                                         meter_provider=self.meter_provider)
        elif self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()

    def block(self, fn: Callable[[], None], calls: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - start) / calls / 1000

    def round(self, calls: int, contender_first: bool) -> dict[str, float]:
        baseline = lambda: _plain_call(self.client, self.stream)  # noqa: E731
        out: dict[str, float] = {}
        if self.sticky:
            out["cont"] = self.block(self.contender, calls)
            self.exporter.clear()
            return out
        for which in (("cont", "base") if contender_first else ("base", "cont")):
            self._instrumented(which == "cont")
            out[which] = self.block(self.contender if which == "cont" else baseline, calls)
        self._instrumented(False)
        self.exporter.clear()
        return out


def count_main(contender: str, stream: bool, calls: int) -> None:
    """The ``--instructions`` worker: ``calls`` instrumented calls after the warm-up, and exit."""
    worker = Worker(contender, stream)
    worker._instrumented(True)
    for _ in range(30):
        worker.contender()
    for i in range(calls):
        worker.contender()
        if i % 20 == 19:
            worker.exporter.clear()


def worker_main(contender: str, stream: bool) -> None:
    worker = Worker(contender, stream)
    for _ in range(3):
        worker.round(5, True)  # warm up imports, caches and the price memo
    print("ready", flush=True)
    for line in sys.stdin:
        calls, first = line.split()
        print(json.dumps(worker.round(int(calls), first == "1")), flush=True)


# --- the parent -----------------------------------------------------------------------------
def _worker_env(**extra: str) -> dict[str, str]:
    """A worker's environment: ours, with this checkout importable (anchors' venvs lack it)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {**os.environ, "PYTHONPATH": root, **extra}


def _spawn(python: str, contender: str, stream: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [python, os.path.abspath(__file__), "--worker", contender] + (["--stream"] * stream),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_worker_env())
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"worker {contender} failed to start ({line!r})")
    return proc


def measure(contenders: dict[str, str], stream: bool, rounds: int,
            calls: int) -> dict[str, list[dict[str, float]]]:
    procs = {name: _spawn(python, name, stream) for name, python in contenders.items()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in procs}
    try:
        for r in range(rounds):
            order = list(procs)
            random.shuffle(order)
            for name in order:
                proc = procs[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{calls} {r % 2}\n")
                proc.stdin.flush()
                results[name].append(json.loads(proc.stdout.readline()))
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
    return results


def _instructions(python: str, contender: str, stream: bool, calls: int) -> int:
    """Instructions a worker process executes with ``calls`` calls (valgrind's callgrind)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python,
         os.path.abspath(__file__), "--count", str(calls), "--worker", contender]
        + ["--stream"] * stream,
        capture_output=True, text=True, check=True, env=_worker_env(PYTHONHASHSEED="0"))
    line = next(x for x in out.stderr.splitlines() if "Collected :" in x)
    return int(line.split(":")[1].split()[0])


def count_instructions(contenders: dict[str, str], stream: bool, calls: int) -> dict[str, float]:
    """Instructions per call of each contender: the difference of a run with ``calls`` more
    calls, so start-up and warm-up cancel. Two processes at a time (valgrind is slow)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(name, python, n) for name, python in contenders.items() for n in (20, 20 + calls)]
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda job: _instructions(job[1], job[0], stream, job[2]), jobs))
    by_job = {(name, n): count for (name, _, n), count in zip(jobs, counts, strict=True)}
    return {name: (by_job[name, 20 + calls] - by_job[name, 20]) / calls for name in contenders}


def report_instructions(title: str, per_call: dict[str, float]) -> Iterator[str]:
    base = per_call["aa"]
    overhead = {name: value - base for name, value in per_call.items() if name != "aa"}
    yield f"\n{title}, instructions (valgrind): uninstrumented call {base / 1e6:.2f} M\n"
    yield f"{'contender':<16}{'overhead k':>12}{'÷ span':>9}{'÷ span+metrics':>16}\n"
    for name, value in overhead.items():
        yield (f"{name:<16}{value / 1e3:>12.0f}{value / overhead['span']:>9.2f}"
               f"{value / overhead['span_metrics']:>16.2f}\n")


def _median_diff(rounds: list[dict[str, float]], aa: list[dict[str, float]]) -> float:
    """Median over pairs of rounds of the mean paired difference. Rounds alternate which block
    runs first, and the first block of a round runs colder, so single-round differences are
    bimodal and their median falls between the modes' inner tails, the noisiest rounds.
    Averaging each round with the next (one of each order) removes the order effect first."""
    # A sticky worker has no baseline of its own: the aa worker's of the same round stands in.
    diffs = [r["cont"] - r.get("base", a["base"]) for r, a in zip(rounds, aa, strict=True)]
    return statistics.median((x + y) / 2 for x, y in zip(diffs[::2], diffs[1::2], strict=True))


def report(title: str, results: dict[str, list[dict[str, float]]]) -> Iterator[str]:
    aa = results["aa"]
    overhead = {name: _median_diff(rounds, aa) for name, rounds in results.items()}
    base = statistics.median(r["base"] for r in aa)
    # A/A across processes: the baselines of two workers, round by round.
    cross = _median_diff([{"cont": a["base"]} for a in aa], results["span"])
    yield f"\n{title}: uninstrumented call {base:.0f} µs (median); "
    yield f"A/A across processes (median Δ of baselines) {cross:.1f} µs\n"
    yield f"{'contender':<16}{'overhead µs':>12}{'÷ span':>9}{'÷ span+metrics':>16}\n"
    for name, value in overhead.items():
        span = value / overhead["span"]
        both = value / overhead["span_metrics"]
        mark = " *" if "base" not in results[name][0] else ""
        yield f"{name:<16}{value:>12.1f}{span:>9.2f}{both:>16.2f}{mark}\n"
    if any("base" not in rounds[0] for rounds in results.values()):
        yield "* cannot be uninstrumented: paired with the aa worker's baseline (noisier)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rounds", type=int, default=40, help="an even number (rounds pair up)")
    parser.add_argument("--calls", type=int, default=20, help="calls per block")
    parser.add_argument("--anchor", action="append", default=[], metavar="NAME=PYTHON",
                        help=f"also run an anchor from a side venv; NAME in {sorted(ANCHORS)}")
    parser.add_argument("--instructions", type=int, default=0, metavar="CALLS",
                        help="count instructions per call instead of timing (needs valgrind; "
                        "deterministic, immune to a noisy machine; ~1 min per contender)")
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 2 or args.rounds % 2:
        parser.error("--rounds must be an even number >= 2 (rounds pair up)")
    if args.worker:
        if args.count is not None:
            count_main(args.worker, args.stream, args.count)
        else:
            worker_main(args.worker, args.stream)
        return
    contenders = {name: sys.executable for name in ("aa", "span", "span_metrics", "ours")}
    for anchor in args.anchor:
        name, _, python = anchor.partition("=")
        if name not in ANCHORS:
            parser.error(f"unknown anchor {name!r}")
        contenders[name] = python
    import openai

    method = (f"instructions over {args.instructions} calls" if args.instructions
              else f"{args.rounds} rounds × {args.calls} calls")
    print(f"openai {openai.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()} {os.cpu_count()} CPUs, {method}")
    for stream in (False, True):
        title = "stream (24 chunks)" if stream else "non-stream"
        if args.instructions:
            per_call = count_instructions(contenders, stream, args.instructions)
            sys.stdout.write("".join(report_instructions(title, per_call)))
            continue
        calls = max(1, args.calls // 4) if stream else args.calls
        results = measure(contenders, stream, args.rounds, calls)
        sys.stdout.write("".join(report(title, results)))


if __name__ == "__main__":
    main()
