"""``otel-llm demo``: a RAG workload against a local stand-in LLM, sent through the gateway.

No Docker and no API keys: it starts the stand-in OpenAI-compatible server and (unless
``--target`` names a running one) an embedded ``otel-llm serve`` on loopback, runs the workload
through the real ``openai`` client with otel-llm configured, and ends with a summary table.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from otel_llm.core.types import CallRecord


@dataclass
class Tally:
    """What the demo saw, from the accounting path (a CallObserver)."""

    calls: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    cost: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, record: CallRecord) -> None:
        call = record.call
        key = f"{call.operation} {call.request_model or call.model or '-'}"
        with self.lock:
            self.calls[key] += 1
            self.tokens[key] += (call.input_tokens or 0) + (call.output_tokens or 0)
            if record.cost is not None and record.cost.total_usd is not None:
                self.cost[key] += record.cost.total_usd
            if record.error is not None:
                self.errors[(record.error.category, record.error.type)] += 1

    @property
    def total_cost(self) -> float:
        with self.lock:
            return sum(self.cost.values())

    @property
    def total_calls(self) -> int:
        with self.lock:
            return sum(self.calls.values())


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run a sample RAG workload against a local stand-in LLM and show cost and alerts",
        description=__doc__,
    )
    p.add_argument("--rate", type=float, default=5.0, help="RAG requests per second (default 5)")
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds to run (default 20; 0 = until interrupted)")
    p.add_argument("--target", metavar="URL",
                   help="OTLP gRPC endpoint of a running otel-llm serve or collector "
                        "(default: start one in-process)")
    p.add_argument("--jaeger-url", metavar="URL", help="Jaeger UI base URL, for trace links")
    p.add_argument("--keep-serving", action="store_true",
                   help="keep the embedded gateway (dashboard, /metrics) up after the summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    import sys

    stream = out or sys.stdout
    if args.rate <= 0 or args.duration < 0:
        print("otel-llm demo: --rate must be > 0 and --duration >= 0", file=sys.stderr)
        return 2
    try:
        import openai
    except ImportError:
        print("otel-llm demo needs the openai client: pip install 'otel-llm[openai]'",
              file=sys.stderr)
        return 2
    return _Demo(args, stream, openai).run()


class _Demo:
    def __init__(self, args: argparse.Namespace, out: TextIO, openai: Any) -> None:
        self.args = args
        self.out = out
        self.openai = openai
        self.stop = threading.Event()
        self.cleanups: list[Callable[[], None]] = []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> int:
        import signal

        previous = signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        try:
            return self._run()
        except KeyboardInterrupt:
            return 130
        finally:
            for cleanup in reversed(self.cleanups):
                cleanup()
            signal.signal(signal.SIGTERM, previous)

    def _run(self) -> int:

        import otel_llm
        from otel_llm.demo.standin import create_app
        from otel_llm.demo.workload import Workload
        from otel_llm.gateway.receiver_http import HttpServer

        standin = HttpServer(create_app(seed=1), host="127.0.0.1", port=0)
        standin.start()
        self.cleanups.append(standin.shutdown)
        gateway = None
        target = self.args.target
        if target is None:
            gateway = self._start_gateway()
            target = f"http://{gateway.grpc.address}"
        self.say(f"otel-llm demo: stand-in LLM at http://{standin.address}/v1, "
                 f"sending OTLP to {target}")

        # The demo is its own process: configure() installs the global providers, and the
        # OTEL_* environment (e.g. OTEL_METRICS_EXPORTER=none) applies as in any app.
        tel = otel_llm.configure(
            service_name=os.environ.get("OTEL_SERVICE_NAME") or "otel-llm-demo",
            endpoint=target, protocol="grpc", instrument=["openai"],
        )
        tally = Tally()
        tel.accountant.add_observer(tally)
        self.cleanups.append(tel.shutdown)
        client = self.openai.OpenAI(
            api_key="sk-demo-not-a-real-key", base_url=f"http://{standin.address}/v1",
            max_retries=0, timeout=0.5,
        )
        self.cleanups.append(client.close)
        self._drive(Workload(client), tally)
        tel.force_flush()
        time.sleep(1.2)  # one more alert evaluation tick (they run every second)
        self._summary(tally, tel, gateway)
        if gateway is not None and self.args.keep_serving:
            self.say("serving until interrupted (Ctrl-C)…")
            while not self.stop.wait(1.0):
                pass
        return 0

    def _start_gateway(self) -> Any:
        from otel_llm.gateway import Gateway, GatewaySettings
        from otel_llm.serve import wire

        gateway = None
        for grpc_port, http_port in ((4317, 4318), (0, 0)):  # the defaults, else free ports
            candidate = Gateway(GatewaySettings(
                grpc_port=grpc_port, http_port=http_port, jaeger_url=self.args.jaeger_url,
            ))
            cleanup = wire(candidate)
            try:
                candidate.start()
            except OSError:
                candidate.shutdown()
                cleanup()
                continue
            gateway = candidate
            self.cleanups.append(cleanup)
            self.cleanups.append(candidate.shutdown)
            break
        if gateway is None:
            raise SystemExit("otel-llm demo: could not start the embedded gateway")
        self.say(gateway.banner())
        return gateway

    def _drive(self, workload: Any, tally: Tally) -> None:
        duration = self.args.duration
        interval = 1.0 / self.args.rate
        start = time.monotonic()
        deadline = start + duration if duration > 0 else float("inf")
        next_report = start + 1.0
        index = 0
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="otel-llm-demo") as pool:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                pool.submit(workload.pipeline, index)
                index += 1
                if now >= next_report:
                    next_report += 1.0
                    with tally.lock:
                        errors = sum(tally.errors.values())
                    self.say(f"  t={now - start:4.0f}s  requests={index}  "
                             f"calls={tally.total_calls}  cost=${tally.total_cost:.4f}  "
                             f"errors={errors}")
                self.stop.wait(max(0.0, start + index * interval - time.monotonic()))

    def _summary(self, tally: Tally, tel: Any, gateway: Any) -> None:
        say = self.say
        say("")
        say(f"{'operation model':<40}{'calls':>7}{'tokens':>10}{'cost USD':>12}")
        with tally.lock:
            for key in sorted(tally.calls):
                cost = f"{tally.cost[key]:.5f}" if key in tally.cost else "-"
                say(f"{key:<40}{tally.calls[key]:>7}{tally.tokens[key]:>10}{cost:>12}")
            total = sum(tally.cost.values())
            say(f"{'total':<40}{sum(tally.calls.values()):>7}"
                f"{sum(tally.tokens.values()):>10}{total:>12.5f}")
            if tally.errors:
                say("")
                say(f"{'error category':<24}{'error.type':<26}{'calls':>7}")
                for (category, kind), count in sorted(tally.errors.items()):
                    say(f"{category:<24}{kind:<26}{count:>7}")
        fired = [("in-process", a) for a in _fired(tel.alerts)]
        if gateway is not None:
            fired += [("gateway", a) for a in _fired(gateway.alerts)]
        say("")
        if fired:
            say("alerts that fired:")
            for where, alert in fired:
                summary = alert.annotations.get("summary", "")
                say(f"  [{alert.severity}] {alert.rule} ({alert.state}, {where}): {summary}")
                for trace_id in alert.trace_ids[:3]:
                    say(f"      trace {trace_id}")
        else:
            say("no alert fired")
        if gateway is not None:
            recorded = _recorded(f"http://{gateway.http.address}")
            if recorded is not None:
                say("")
                say(f"the gateway recorded {recorded['total_calls']} calls, "
                    f"${recorded['total_cost_usd']:.5f} (GET /api/v1/metrics/summary)")
        say("")
        say("where to look:")
        if gateway is not None:
            say(f"  dashboard  http://{gateway.http.address}/")
            say(f"  metrics    http://{gateway.http.address}/metrics")
        if self.args.jaeger_url:
            say(f"  jaeger     {self.args.jaeger_url.rstrip('/')}/search?service=otel-llm-demo")


def _fired(service: Any) -> list[Any]:
    if service is None:
        return []
    return [a for a in [*service.active(), *service.history()] if a.fired_at is not None]


def _recorded(base_url: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """The gateway API's summary once the store has written the run (it writes in batches)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    summary: dict[str, Any] | None = None
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get("/api/v1/metrics/summary", params={"days": 1})
            except httpx.HTTPError:
                return None
            if response.status_code != 200:
                return None
            summary = response.json()
            if summary and summary.get("total_calls"):
                return summary
            time.sleep(0.25)
    return summary
