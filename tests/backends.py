"""Real OTLP backends for the gateway tests: Arize Phoenix and the rotel collector.

Each comes from PyPI into its own venv in a cache directory outside the repository
(``$OTEL_LLM_BACKENDS_DIR``, default ``~/.cache/otel-llm-test-backends``), made on first use and
reused after; it runs on 127.0.0.1 only, on free ports, with its state in the test's temporary
directory, and is always stopped (SIGTERM, then SIGKILL, to its own process group).

Test modules load the fixtures with ``pytest_plugins = ["tests.backends"]`` (registered once,
so a session-scoped fixture is shared by all modules, not made again for each):

- ``phoenix_venv`` (session): Phoenix's venv, installed on first use.
- ``phoenix`` (module): a running :class:`Phoenix`.
- ``rotel_agent`` (session): path of the rotel collector binary, installed on first use.
- ``make_rotel`` (function): starts :class:`Rotel` collectors, all stopped after the test.
- ``make_gateway_cli`` (function): starts ``otel-llm serve`` subprocesses, all stopped after.

A backend that cannot be had here (pip's registry says no, or no venv can be made) skips its
tests with the reason; one that installs but then fails to run is an error. Every wait has a
deadline. ``OTEL_LLM_BACKENDS_INSTALL_TIMEOUT`` (seconds) bounds one install (default 1200).
Processes get a parent-death signal (``setpriv``, Linux), so a killed pytest leaves none behind.

PYTEST_DONT_REWRITE: test modules import helpers from here before ``pytest_plugins`` registers
it, too late for pytest to rewrite its asserts; so failures raise AssertionError with a message.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_llm.core.pricing import PriceTable
from tests.pricing_oracle import genai_prices_cost

# Read at import: the gateway tests' autouse fixture removes OTEL_LLM_* while a test runs.
CACHE_DIR = Path(
    os.environ.get("OTEL_LLM_BACKENDS_DIR") or Path.home() / ".cache" / "otel-llm-test-backends"
).expanduser()
INSTALL_TIMEOUT = float(os.environ.get("OTEL_LLM_BACKENDS_INSTALL_TIMEOUT") or 1200)

PHOENIX_VERSION = "20.26.1"
PHOENIX_SPEC = f"arize-phoenix=={PHOENIX_VERSION}"
ROTEL_VERSION = "0.0.1a15"  # only pre-releases exist; an exact pin lets pip take one
ROTEL_SPEC = f"rotel=={ROTEL_VERSION}"

PHOENIX_START_TIMEOUT = 240.0  # first start runs its database migrations (~20 s here)
ROTEL_START_TIMEOUT = 30.0
GATEWAY_START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
START_ATTEMPTS = 3  # a free port picked here can be taken before the backend binds it

# pip's own words when the registry has nothing that fits: a "no", not a failure to report.
_NOT_AVAILABLE = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "requires a different Python",
    "ResolutionImpossible",
    "is not a supported wheel on this platform",
)
_ADDRESS_IN_USE = ("address already in use", "addrinuse", "errno 98", "failed to bind")


# -- polling and processes --------------------------------------------------------------------

T = TypeVar("T")


def poll(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    process: Process | None = None,
) -> T:
    """``probe()``'s first truthy result within ``timeout`` seconds; AssertionError otherwise,
    or at once when ``process`` exits meanwhile (its log tail in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if process is not None and not process.alive():
            raise AssertionError(
                f"{process.name} exited ({process.returncode}) while waiting for {what}\n"
                f"{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            tail = f"\n{process.log_tail()}" if process is not None else ""
            raise AssertionError(f"no {what} within {timeout:g} s{tail}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


_RUNNING: set[Process] = set()
# util-linux's setpriv execs the command with a parent-death signal: same pid, nothing left
# behind by a killed pytest. (The signal follows the spawning *thread*: start from the main one.)
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None


class Process:
    """A backend process in its own process group, stdout and stderr in ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
    ) -> None:
        self.name = name
        self.log = log
        if _SETPRIV is not None:  # SIGTERM it should the test process die without a teardown
            argv = [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]
        with log.open("wb") as out:
            self._popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaches any children too
            )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def alive(self) -> bool:
        return self._popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.output().splitlines()[-lines:]
        return f"--- last lines of {self.log} ---\n" + "\n".join(tail)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL it; the exit code. The group
        is signalled only while its leader is unreaped, so its id cannot have been reused."""
        _RUNNING.discard(self)
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            if self._popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(wait)
        return self._popen.wait(timeout)


@atexit.register
def _stop_leftovers() -> None:  # a safety net: fixtures stop what they start
    for process in list(_RUNNING):
        process.stop(5)


def listening_addresses(pid: int) -> list[tuple[str, int]] | None:
    """The TCP addresses ``pid`` listens on, from Linux's /proc; None where that can't tell."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        found: list[tuple[str, int]] = []
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{pid}/net/{table}")
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    address, port = local.split(":")
                    found.append((_proc_address(address), int(port, 16)))
        return found
    except OSError:
        return None


def _proc_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)  # 32-bit words in host (little-endian) order
    ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(ordered))


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_loopback_only(process: Process, ports: Sequence[int]) -> None:
    """Fail unless ``process`` listens on ``ports`` and on loopback addresses only."""
    addresses = listening_addresses(process.pid)
    if addresses is None:  # no /proc: nothing to check with
        return
    outside = [a for a in addresses if not _is_loopback(a[0])]
    missing = set(ports) - {port for _, port in addresses}
    if outside or missing:
        process.stop()
        raise AssertionError(
            f"{process.name} must listen on 127.0.0.1:{sorted(ports)} only; "
            f"it listens on {addresses}"
        )


def _start_with_retries(start: Callable[[], T]) -> T:
    """``start()``, again with fresh ports when a port was taken before the backend bound it."""
    for attempt in range(START_ATTEMPTS):
        try:
            return start()
        except _PortTaken:
            if attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    pass


def _wait_started(process: Process, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``ready()``; a start that lost its port raises _PortTaken, others fail."""
    try:
        poll(ready, timeout, what, process=process, interval=0.2)
    except AssertionError:
        taken = not process.alive() and any(
            words in process.output().lower() for words in _ADDRESS_IN_USE
        )
        process.stop()
        if taken:
            raise _PortTaken() from None
        raise


def _backend_env(home: Path, **extra: str) -> dict[str, str]:
    """A small environment: nothing of the developer's (proxies, OTEL_*, credentials) leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


# -- side venvs ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock on ``path`` (another session may be installing), with a deadline."""
    with path.open("a") as handle:

        def take() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        poll(take, timeout, f"the lock {path}", interval=0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run_logged(argv: Sequence[str], log: Path, timeout: float) -> int:
    """Run ``argv`` (its own process group), output appended to ``log``; killed after timeout."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
        }
        process = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
            raise AssertionError(
                f"{argv[0]} did not finish within {timeout:g} s (raise "
                f"OTEL_LLM_BACKENDS_INSTALL_TIMEOUT if the registry is just slow); log: {log}"
            ) from None


def side_venv(name: str, spec: str) -> Path:
    """The venv ``CACHE_DIR/name`` with ``spec`` installed: made once, then reused.

    A stamp written last marks a complete install; an incomplete one is made again. Skips the
    test when pip's registry has no ``spec`` for this machine or no venv can be made here.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    venv = CACHE_DIR / name
    stamp = venv / ".otel-llm-installed"
    log = CACHE_DIR / f"{name}.install.log"
    with _lock(CACHE_DIR / f"{name}.lock", INSTALL_TIMEOUT + 120):
        if stamp.is_file() and stamp.read_text().split("\n")[0] == spec and _python(venv).exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        log.write_bytes(b"")
        started = time.monotonic()
        if _run_logged([sys.executable, "-m", "venv", str(venv)], log, 300) != 0:
            pytest.skip(f"cannot make a venv for {spec} here: {_last_line(log)} (log: {log})")
        pip = [str(_python(venv)), "-m", "pip", "install", "--no-input"]
        code = _run_logged([*pip, "--disable-pip-version-check", spec], log, INSTALL_TIMEOUT)
        if code != 0:
            text = log.read_text(errors="replace")
            if any(words in text for words in _NOT_AVAILABLE):
                pytest.skip(f"{spec} cannot be installed here: {_last_line(log)} (log: {log})")
            raise AssertionError(f"pip install {spec} failed ({code}); log: {log}\n{text[-3000:]}")
        seconds = time.monotonic() - started
        stamp.write_text(f"{spec}\ninstalled in {seconds:.0f} s\n")
    return venv


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


# -- Phoenix ------------------------------------------------------------------------------------

# Runs `phoenix serve` with its OTLP/gRPC receiver bound to 127.0.0.1 (Phoenix hard-codes
# "[::]:PORT", every interface).
_PHOENIX_LAUNCHER = """\
import sys

import grpc.aio._server

_add_insecure_port = grpc.aio._server.Server.add_insecure_port


def _loopback_only(self, address):
    if address.startswith("[::]:"):
        address = "127.0.0.1:" + address[len("[::]:"):]
    return _add_insecure_port(self, address)


grpc.aio._server.Server.add_insecure_port = _loopback_only

from phoenix.server.main import main  # noqa: E402

sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""


@dataclass
class Phoenix:
    """A running Phoenix: OTLP/gRPC on ``grpc_port``, UI, REST and OTLP/HTTP on ``http_port``."""

    http_port: int
    grpc_port: int
    process: Process
    version: str = PHOENIX_VERSION

    @property
    def url(self) -> str:
        """Base URL: REST under /v1, OTLP/HTTP at /v1/traces (the gateway's http forward)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def spans(self, project: str) -> list[dict[str, Any]]:
        """The project's spans from ``GET /v1/projects/{project}/spans``; [] before its first."""
        reply = httpx.get(
            f"{self.url}/v1/projects/{project}/spans", params={"limit": 1000}, timeout=10
        )
        if reply.status_code == 404:  # Phoenix makes a project when its first span lands
            return []
        reply.raise_for_status()
        data: list[dict[str, Any]] = reply.json()["data"]
        return data

    def wait_for_spans(
        self, project: str, count: int, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """At least ``count`` spans of ``project``, polled with a deadline."""
        seen: list[dict[str, Any]] = []

        def enough() -> list[dict[str, Any]] | None:
            nonlocal seen
            seen = self.spans(project)
            return seen if len(seen) >= count else None

        try:
            return poll(
                enough,
                timeout,
                f"{count} spans in Phoenix project {project!r}",
                interval=0.2,
                process=self.process,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nseen: {[s['name'] for s in seen]}") from None


def start_phoenix(venv: Path, workdir: Path) -> Phoenix:
    """Start Phoenix from ``venv`` with its state under ``workdir``; return it once serving."""
    workdir.mkdir(parents=True, exist_ok=True)
    launcher = workdir / "launch_phoenix.py"
    launcher.write_text(_PHOENIX_LAUNCHER)

    def start() -> Phoenix:
        http_port, grpc_port = free_port(), free_port()
        env = _backend_env(
            workdir,
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(http_port),
            PHOENIX_GRPC_PORT=str(grpc_port),
            PHOENIX_WORKING_DIR=str(workdir),  # its SQLite database lives here
            # No calls home: telemetry pixels, fonts, the WASM sandbox download, the assistant.
            PHOENIX_TELEMETRY_ENABLED="false",
            PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
            PHOENIX_DISABLE_AGENT_ASSISTANT="true",
            PHOENIX_ENABLE_MCP_SERVER="false",
            PHOENIX_LOG_MIGRATIONS="false",
        )
        process = Process(
            "phoenix",
            [str(_python(venv)), str(launcher)],
            env=env,
            cwd=workdir,
            log=workdir / f"phoenix-{http_port}.log",
        )

        def ready() -> bool:
            if not port_open(grpc_port):
                return False
            try:
                return httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2).is_success
            except httpx.HTTPError:
                return False

        _wait_started(process, ready, PHOENIX_START_TIMEOUT, "Phoenix serving")
        check_loopback_only(process, [http_port, grpc_port])
        return Phoenix(http_port, grpc_port, process)

    return _start_with_retries(start)


@pytest.fixture(scope="session")
def phoenix_venv() -> Path:
    """Phoenix's own venv (made once, in the cache dir); skips when it can't be had here."""
    return side_venv(f"phoenix-{PHOENIX_VERSION}", PHOENIX_SPEC)


@pytest.fixture(scope="module")
def phoenix(phoenix_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """Arize Phoenix on 127.0.0.1 for a test module (not the session: it holds ~400 MB)."""
    server = start_phoenix(phoenix_venv, tmp_path_factory.mktemp("phoenix"))
    try:
        yield server
    finally:
        server.process.stop()


# -- rotel --------------------------------------------------------------------------------------


@dataclass
class Rotel:
    """A running rotel collector: OTLP in on ``grpc_port``/``http_port``, OTLP out."""

    grpc_port: int
    http_port: int
    process: Process

    def endpoint(self, protocol: str) -> str:
        """The receiver URL for an SDK exporter speaking ``protocol`` (grpc or http)."""
        return f"http://127.0.0.1:{self.grpc_port if protocol == 'grpc' else self.http_port}"


def rotel_binary(venv: Path) -> Path:
    """The collector the ``rotel`` wheel ships (``rotel/rotel-agent`` in site-packages)."""
    found = sorted(venv.glob("lib/python*/site-packages/rotel/rotel-agent"))
    if not found:
        raise AssertionError(f"no rotel-agent binary in {venv}")
    return found[0]


def start_rotel(agent: Path, workdir: Path, forward: str, protocol: str) -> Rotel:
    """Start rotel receiving OTLP on 127.0.0.1 and exporting it to ``forward`` over ``protocol``
    (grpc or http: for http, ``forward`` is the base URL and rotel appends /v1/traces)."""
    workdir.mkdir(parents=True, exist_ok=True)

    def start() -> Rotel:
        grpc_port, http_port = free_port(), free_port()
        argv = [
            str(agent),
            "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", forward,
            "--otlp-exporter-protocol", protocol,
            "--otlp-exporter-retry-initial-backoff", "100ms",
            "--otlp-exporter-retry-max-backoff", "1s",
            "--batch-timeout", "50ms",
            "--pid-file", str(workdir / f"rotel-{grpc_port}.pid"),
            "--log-file", str(workdir / f"rotel-{grpc_port}.daemon.log"),
        ]  # fmt: skip
        process = Process(
            "rotel",
            argv,
            env=_backend_env(workdir),
            cwd=workdir,
            log=workdir / f"rotel-{grpc_port}.log",
        )
        _wait_started(
            process,
            lambda: port_open(grpc_port) and port_open(http_port),
            ROTEL_START_TIMEOUT,
            "rotel listening",
        )
        check_loopback_only(process, [grpc_port, http_port])
        return Rotel(grpc_port, http_port, process)

    return _start_with_retries(start)


@pytest.fixture(scope="session")
def rotel_agent() -> Path:
    """The rotel collector binary, from its own venv; skips when rotel can't be had here."""
    agent = rotel_binary(side_venv(f"rotel-{ROTEL_VERSION}", ROTEL_SPEC))
    try:
        subprocess.run([str(agent), "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:  # e.g. a binary for another CPU
        pytest.skip(f"the rotel-agent binary of {ROTEL_SPEC} does not run here: {exc}")
    return agent


@pytest.fixture
def make_rotel(rotel_agent: Path, tmp_path: Path) -> Iterator[Callable[..., Rotel]]:
    """``make_rotel(forward=URL, protocol="grpc"|"http")`` starts a collector; all are stopped
    after the test."""
    started: list[Rotel] = []

    def make(*, forward: str, protocol: str = "grpc") -> Rotel:
        rotel = start_rotel(rotel_agent, tmp_path / f"rotel{len(started)}", forward, protocol)
        started.append(rotel)
        return rotel

    try:
        yield make
    finally:
        for rotel in started:
            rotel.process.stop()


# -- the gateway as a process -------------------------------------------------------------------


@dataclass
class GatewayProcess:
    """``otel-llm serve`` in a subprocess, and the addresses it printed."""

    grpc_address: str
    http_address: str
    process: Process


def start_gateway_cli(workdir: Path, *args: str) -> GatewayProcess:
    """``otel-llm serve --grpc-port 0 --http-port 0 ARGS`` (the full CLI, call store included,
    its database under ``workdir``); returns once it printed its one start-up line."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_LLM_", "OTEL_"))}
    argv = [
        sys.executable, "-m", "otel_llm.cli", "serve",
        "--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0",
        "--db", f"sqlite:///{workdir / 'calls.db'}",
        *args,
    ]  # fmt: skip
    process = Process("otel-llm serve", argv, env=env, cwd=workdir, log=workdir / "serve.log")

    def banner() -> str | None:
        for line in process.output().splitlines():
            if line.startswith("otel-llm serve: grpc="):
                return line
        return None

    try:
        line = poll(banner, GATEWAY_START_TIMEOUT, "the start-up line", process=process)
    except AssertionError:
        process.stop()
        raise
    grpc_part, http_part = line.removeprefix("otel-llm serve: ").split()
    return GatewayProcess(grpc_part.removeprefix("grpc="), http_part.removeprefix("http="), process)


@pytest.fixture
def make_gateway_cli(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``make_gateway_cli(*flags)`` starts ``otel-llm serve``; all are stopped after the test."""
    started: list[GatewayProcess] = []

    def make(*args: str) -> GatewayProcess:
        gateway = start_gateway_cli(tmp_path / f"serve{len(started)}", *args)
        started.append(gateway)
        return gateway

    try:
        yield make
    finally:
        for gateway in started:
            gateway.process.stop()


# -- the client side: plain SDK spans, the SDK's own OTLP exporters ------------------------------

LLM_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1234,
    "gen_ai.usage.output_tokens": 321,
    "openinference.span.kind": "LLM",
}
FAILED_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "error.type": "rate_limit",
    "openinference.span.kind": "LLM",
}
ROOT_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "POST",
    "url.path": "/ask",
    "openinference.span.kind": "CHAIN",
}


def llm_trace(project: str) -> list[ReadableSpan]:
    """One trace as a third-party instrumentation writes it (otel-llm absent on the client):
    a request span, an LLM call with usage, and a rate-limited LLM call. ``project`` is the
    Phoenix project (resource ``openinference.project.name``)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rag-api", "openinference.project.name": project})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("third.party.instrumentation", "1.0.0")
    with tracer.start_as_current_span(
        "POST /ask", kind=SpanKind.SERVER, attributes=ROOT_ATTRIBUTES
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=LLM_ATTRIBUTES
        ):
            pass
        with tracer.start_as_current_span(
            "chat gpt-4o-mini retry", kind=SpanKind.CLIENT, attributes=FAILED_ATTRIBUTES
        ) as failed:
            failed.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def expected_cost_usd() -> float:
    """What the core prices the LLM call of :func:`llm_trace` at (checked against genai-prices)."""
    table = PriceTable()
    rates = table.rates("openai", "gpt-4o-mini")
    if rates is None:
        raise AssertionError("the core has no price for openai/gpt-4o-mini")
    cost = table.cost(
        rates,
        input_tokens=LLM_ATTRIBUTES["gen_ai.usage.input_tokens"],
        output_tokens=LLM_ATTRIBUTES["gen_ai.usage.output_tokens"],
    ).total_usd
    oracle = genai_prices_cost(
        "gpt-4o-mini",
        "openai",
        input_tokens=LLM_ATTRIBUTES["gen_ai.usage.input_tokens"],
        output_tokens=LLM_ATTRIBUTES["gen_ai.usage.output_tokens"],
    )
    if cost is None or not (cost > 0 and cost == pytest.approx(oracle, rel=1e-9)):
        raise AssertionError(f"the core prices the call at {cost}, genai-prices at {oracle}")
    return cost


def export_spans(protocol: str, endpoint: str, spans: Sequence[ReadableSpan]) -> None:
    """Send ``spans`` with the SDK's OTLP exporter for ``protocol`` (grpc or http)."""
    exporter: GrpcSpanExporter | HttpSpanExporter
    if protocol == "grpc":
        exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    else:
        exporter = HttpSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=10)
    try:
        result = exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            raise AssertionError(f"the SDK's {protocol} exporter got {result} from {endpoint}")
    finally:
        exporter.shutdown()


def span_id_hex(span: ReadableSpan) -> str:
    """The span ID as Phoenix and OTLP/JSON write it."""
    return format(_context(span).span_id, "016x")


def trace_id_hex(span: ReadableSpan) -> str:
    return format(_context(span).trace_id, "032x")


def _context(span: ReadableSpan) -> SpanContext:
    context = span.get_span_context()
    if context is None:
        raise AssertionError(f"span {span.name!r} has no context")
    return context
