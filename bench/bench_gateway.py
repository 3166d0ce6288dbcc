"""Gateway throughput (BENCHMARKS.md §3): spans per second, SDK-free load → gateway → loopback sink.

Contenders, each its own process, driven by the same load generator in short interleaved rounds:

- ``grpc floor``: a bare grpcio server that decodes each request and counts spans (the Python
  gRPC floor), and its twin ``grpc floor (A/A)`` to show the noise level;
- ``gateway enrich``: ``python -m otel_llm.gateway`` forwarding to a loopback sink, enrichment on;
- ``gateway pass``: the same with ``--no-enrich`` (decode, validate, queue, forward).

Load: pre-encoded ``ExportTraceServiceRequest`` bytes of 512 LLM-like spans (15 attributes,
~650 bytes a span), over gRPC from several threads (several requests in flight) and over HTTP.
A contender's rate is spans delivered to its sink (or counted, for the floor) per second of
wall time, and per CPU-second of its own process. In-process floors are measured every round:
decode (lazy), decode + read every attribute, decode + add one attribute + re-encode.
Reported: per-contender medians, the medians of per-round ratios, and each process's peak RSS.

Run: ``python bench/bench_gateway.py [--rounds 5] [--seconds 2]`` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BATCH = 512
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- workload ---------------------------------------------------------------------------------


def make_batch(seed: int, genai_every: int = 1) -> bytes:
    """512 spans, 15 attributes each, ~650 bytes a span: LLM-like, or with ``genai_every=10``
    one LLM span in ten and HTTP server spans otherwise (a service's usual mix)."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "rag-api"
    scope = rs.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    for i in range(BATCH):
        span = scope.spans.add()
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.parent_span_id = os.urandom(8)
        span.name = "chat gpt-4o-mini"
        span.kind = 3
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 1_234_567_890
        if i % genai_every:
            span.name, span.kind = "GET /v1/answers", 2
            for key, value in _http_attributes(seed, i):
                _set(span.attributes.add(key=key).value, value)
            continue
        for key, value in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            ("gen_ai.response.id", "chatcmpl-" + os.urandom(12).hex()),
            ("gen_ai.usage.input_tokens", 1000 + (seed * 7 + i) % 3000),
            ("gen_ai.usage.output_tokens", 50 + i % 400),
            ("gen_ai.request.temperature", 0.2),
            ("gen_ai.request.max_tokens", 512),
            ("server.address", "api.openai.com"),
            ("server.port", 443),
            ("gen_ai.response.finish_reasons", "stop"),
            ("http.route", "/v1/chat/completions"),
            ("enduser.id", f"user-{i % 50}"),
            ("otel_llm.project.id", "proj-a"),
        ):
            _set(span.attributes.add(key=key).value, value)
    return request.SerializeToString()


def _http_attributes(seed: int, i: int) -> list[tuple[str, object]]:
    return [
        ("http.request.method", "GET"), ("http.route", "/v1/answers"),
        ("http.response.status_code", 200), ("url.scheme", "https"),
        ("url.path", f"/v1/answers/{seed}-{i}"), ("server.address", "rag-api.internal"),
        ("server.port", 8443), ("client.address", f"10.0.{i % 7}.{i % 250}"),
        ("network.protocol.version", "1.1"), ("user_agent.original", "python-httpx/0.28.1"),
        ("http.request.body.size", 200 + i % 900), ("http.response.body.size", 1000 + i),
        ("enduser.id", f"user-{i % 50}"), ("otel_llm.project.id", "proj-a"),
        ("deployment.environment.name", "prod"),
    ]


def _set(target: AnyValue, value: object) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, int):
        target.int_value = value
    else:
        target.double_value = float(value)  # type: ignore[arg-type]


# --- in-process floors --------------------------------------------------------------------------


def floor_decode(payload: bytes) -> None:
    ExportTraceServiceRequest.FromString(payload)


def floor_read_all(payload: bytes) -> None:
    for rs in ExportTraceServiceRequest.FromString(payload).resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    value = kv.value
                    kind = value.WhichOneof("value")
                    getattr(value, kind) if kind else None


def floor_add_encode(payload: bytes) -> None:
    request = ExportTraceServiceRequest.FromString(payload)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                kv = span.attributes.add()
                kv.key = "otel_llm.cost.usd"
                kv.value.double_value = 0.0012
    request.SerializeToString()


def enrich_in_process(account: bool) -> Callable[[bytes], None]:
    """The enrich step alone, in this process: enrich the encoded request, [account]."""
    from prometheus_client import CollectorRegistry

    from otel_llm.accounting import Accountant
    from otel_llm.gateway.enrich import enrich_request
    from otel_llm.gateway.wire import AttributeReader
    from otel_llm.prometheus_metrics import PrometheusCallMetrics

    # As the gateway accounts: its scrape-time Prometheus recorder, no SDK instruments.
    accountant = Accountant(recorder=PrometheusCallMetrics(CollectorRegistry()))
    reader = AttributeReader()

    def work(payload: bytes) -> None:
        result = enrich_request(payload, accountant, reader)
        if account:
            for record in result.records:
                accountant.account(record)

    return work


def spans_per_second(work: Callable[[bytes], None], payloads: list[bytes], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work(payloads[done % len(payloads)])
        done += 1
    return done * BATCH / (time.perf_counter() - started)


# --- servers ----------------------------------------------------------------------------------


class CountingSink:
    """A grpcio server that counts requests without decoding them (never the bottleneck)."""

    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()

        def export(_request: bytes, _context: Any) -> bytes:
            with self._lock:
                self.requests += 1
            return b""

        service, method = TRACE_METHOD.strip("/").split("/")
        handler = grpc.unary_unary_rpc_method_handler(export)
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {method: handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def spans(self) -> int:
        with self._lock:
            return self.requests * BATCH


def floor_server_main(port_file: str) -> None:
    """``--floor-server``: decode each request and count its spans; nothing else."""
    counted = [0]
    lock = threading.Lock()

    def export(request: bytes, _context: Any) -> bytes:
        message = ExportTraceServiceRequest.FromString(request)
        n = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        with lock:
            counted[0] += n
        return b""

    def count(_request: bytes, _context: Any) -> bytes:
        with lock:
            return str(counted[0]).encode()

    service, method = TRACE_METHOD.strip("/").split("/")
    server = grpc.server(futures.ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                service,
                {
                    method: grpc.unary_unary_rpc_method_handler(export),
                    "Count": grpc.unary_unary_rpc_method_handler(count),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file + ".tmp", "w") as out:
        out.write(str(port))
    os.replace(port_file + ".tmp", port_file)  # atomically: the parent polls for it
    server.wait_for_termination(3600)


class Contender:
    """One server process under load, with a way to count what it delivered."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[str],
        grpc_addr: str,
        http_addr: str | None,
        delivered: Callable[[], int],
    ) -> None:
        self.name, self.process = name, process
        self.grpc_addr, self.http_addr, self.delivered = grpc_addr, http_addr, delivered

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_floor_server(name: str, tmp: str) -> Contender:
    port_file = os.path.join(tmp, "".join(c if c.isalnum() else "_" for c in name) + ".port")
    process = subprocess.Popen(
        [sys.executable, __file__, "--floor-server", port_file], cwd=ROOT, text=True
    )
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):  # written atomically by the child
        if time.monotonic() > deadline:
            raise RuntimeError("floor server did not start")
        time.sleep(0.05)
    with open(port_file) as source:
        address = f"127.0.0.1:{source.read()}"
    channel = grpc.insecure_channel(address)
    counter = channel.unary_unary(TRACE_METHOD.rsplit("/", 1)[0] + "/Count")
    return Contender(name, process, address, None, lambda: int(counter(b"", timeout=5)))


def start_gateway(name: str, sink: CountingSink, *flags: str) -> Contender:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_LLM_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_llm.gateway",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--forward",
            f"http://127.0.0.1:{sink.port}",
            "--queue-size",
            str(16 * BATCH),
            *flags,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()  # otel-llm serve: grpc=H:P http=H:P
    grpc_addr, http_addr = line[2].removeprefix("grpc="), line[3].removeprefix("http=")
    return Contender(name, process, grpc_addr, http_addr, sink.spans)


# --- load ---------------------------------------------------------------------------------------


def load_grpc(address: str, payloads: list[bytes], seconds: float, threads: int = 4) -> int:
    """Send for ``seconds`` from ``threads`` threads; return the spans acknowledged."""
    acknowledged = [0] * threads
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1)]) as channel:
        export = channel.unary_unary(TRACE_METHOD)
        deadline = time.monotonic() + seconds

        def run(index: int) -> None:
            n = index
            while time.monotonic() < deadline:
                try:
                    export(payloads[n % len(payloads)], timeout=10)
                    acknowledged[index] += BATCH
                except grpc.RpcError:
                    time.sleep(0.002)  # queue full: back off briefly, as the SDK would
                n += 1

        workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return sum(acknowledged)


def load_http(address: str, payloads: list[bytes], seconds: float, threads: int = 4) -> int:
    acknowledged = [0] * threads
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        n = index
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                reply = client.post(
                    f"http://{address}/v1/traces",
                    content=payloads[n % len(payloads)],
                    headers={"Content-Type": "application/x-protobuf"},
                )
                if reply.status_code == 200:
                    acknowledged[index] += BATCH
                else:
                    time.sleep(0.002)
                n += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(acknowledged)


def measure(
    contender: Contender, transport: str, payloads: list[bytes], seconds: float
) -> tuple[float, float]:
    """(delivered spans per wall second, per CPU-second of the contender's process)."""
    delivered0, cpu0, t0 = contender.delivered(), contender.cpu_seconds(), time.perf_counter()
    if transport == "grpc":
        load_grpc(contender.grpc_addr, payloads, seconds)
    else:
        assert contender.http_addr is not None
        load_http(contender.http_addr, payloads, seconds)
    time.sleep(0.2)  # let the last forwards land
    delivered = contender.delivered() - delivered0
    wall, cpu = time.perf_counter() - t0, contender.cpu_seconds() - cpu0
    return delivered / wall, delivered / cpu if cpu > 0 else float("nan")


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="load per contender per round")
    parser.add_argument("--floor-server", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server_main(args.floor_server)
        return 0
    import tempfile

    from google.protobuf.internal import api_implementation

    payloads = [make_batch(i) for i in range(8)]
    print(
        f"protobuf backend: {api_implementation.Type()}; "
        f"{len(payloads[0]) / BATCH:.0f} bytes a span; {os.cpu_count()} cores; "
        f"{args.rounds} rounds x {args.seconds:.1f} s"
    )
    sinks = [CountingSink(), CountingSink()]
    with tempfile.TemporaryDirectory() as tmp:
        contenders = [
            start_floor_server("grpc floor", tmp),
            start_floor_server("grpc floor (A/A)", tmp),
            start_gateway("gateway enrich", sinks[0]),
            start_gateway("gateway pass", sinks[1], "--no-enrich"),
        ]
        try:
            return run_rounds(contenders, payloads, args.rounds, args.seconds)
        finally:
            for contender in contenders:
                contender.stop()
            for sink in sinks:
                sink.server.stop(None)


MIXED = ", 10% GenAI"


def run_rounds(
    contenders: list[Contender], payloads: list[bytes], rounds: int, seconds: float
) -> int:
    by_name = {c.name: c for c in contenders}
    mixed = [make_batch(i, genai_every=10) for i in range(len(payloads))]
    workloads = {"": payloads, MIXED: mixed}
    runs = [("grpc", c.name, "") for c in contenders] + [
        ("http", "gateway enrich", ""),
        ("http", "gateway pass", ""),
        ("grpc", "gateway enrich", MIXED),
        ("grpc", "gateway pass", MIXED),
    ]
    wall: dict[str, list[float]] = {f"{t} {n}{w}": [] for t, n, w in runs}
    per_cpu: dict[str, list[float]] = {f"{t} {n}{w}": [] for t, n, w in runs}
    account = enrich_in_process(account=True)
    # In-process, single thread: label -> (work, the batches it runs on).
    in_process: dict[str, tuple[Callable[[bytes], None], list[bytes]]] = {
        "decode (lazy)": (floor_decode, payloads),
        "decode + read every attribute": (floor_read_all, payloads),
        "decode + add attribute + encode": (floor_add_encode, payloads),
        "gateway enrich step (no accounting)": (enrich_in_process(account=False), payloads),
        "gateway enrich step + accounting": (account, payloads),
        "gateway enrich step + accounting" + MIXED: (account, mixed),
    }
    for work, batches in in_process.values():
        work(batches[0])  # warm the price lookups
    floors: dict[str, list[float]] = {label: [] for label in in_process}
    for round_index in range(rounds):
        order = runs if round_index % 2 == 0 else list(reversed(runs))  # interleave
        for transport, name, workload in order:
            rate, cpu_rate = measure(by_name[name], transport, workloads[workload], seconds)
            wall[f"{transport} {name}{workload}"].append(rate)
            per_cpu[f"{transport} {name}{workload}"].append(cpu_rate)
        for label, (work, batches) in in_process.items():
            floors[label].append(spans_per_second(work, batches, min(seconds, 1.0)))
        print(f"  round {round_index + 1}/{rounds} done", flush=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print("\n| measurement | spans/s (wall) | spans per CPU-second | peak RSS |")
    print("|---|---:|---:|---:|")
    for label, values in floors.items():
        rate = f"{med(values) / 1000:.1f} k"
        print(f"| in-process: {label} | {rate} | {rate} | |")
    for key in wall:
        name = key.split(" ", 1)[1].removesuffix(MIXED)
        print(
            f"| {key} | {med(wall[key]) / 1000:.1f} k | {med(per_cpu[key]) / 1000:.1f} k "
            f"| {by_name[name].peak_rss_mib():.0f} MiB |"
        )

    def ratio(numerator: list[float], denominator: list[float]) -> str:
        return f"{med([a / b for a, b in zip(numerator, denominator, strict=True)]):.2f}"

    floor = floors["decode + add attribute + encode"]
    print("\n| ratio (median of per-round ratios) | wall | per CPU-second | target |")
    print("|---|---:|---:|---|")
    for transport in ("grpc", "http"):
        enrich, passthrough = f"{transport} gateway enrich", f"{transport} gateway pass"
        print(
            f"| {transport}: enrich / decode+add+encode floor | {ratio(wall[enrich], floor)} "
            f"| {ratio(per_cpu[enrich], floor)} | >= 0.50 per core |"
        )
        print(
            f"| {transport}: enrich / pass-through | {ratio(wall[enrich], wall[passthrough])} "
            f"| {ratio(per_cpu[enrich], per_cpu[passthrough])} | >= 0.80 |"
        )
    enrich, passthrough = "grpc gateway enrich" + MIXED, "grpc gateway pass" + MIXED
    print(
        f"| grpc{MIXED}: enrich / pass-through | {ratio(wall[enrich], wall[passthrough])} "
        f"| {ratio(per_cpu[enrich], per_cpu[passthrough])} | (sizing) |"
    )
    a, b = "grpc grpc floor", "grpc grpc floor (A/A)"
    print(
        f"| A/A: grpc floor / its twin | {ratio(wall[a], wall[b])} "
        f"| {ratio(per_cpu[a], per_cpu[b])} | ~1.00 (noise) |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
