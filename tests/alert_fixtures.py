"""Helpers for the alert tests: records, a fake clock, a loopback receiver, real Alertmanager."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from otel_llm.core.types import CallRecord, Cost, ErrorInfo, LLMCall

SERVER_ERROR = ErrorInfo("external_service", "high", "server_error")
RATE_LIMIT = ErrorInfo("resource_error", "high", "rate_limit")


def record(
    t: float,
    *,
    error: ErrorInfo | None = None,
    provider: str = "openai",
    model: str = "gpt-4o",
    operation: str = "chat",
    duration: float | None = 0.5,
    cost: float | None = 0.001,
    tokens: tuple[int, int] = (100, 20),
    documents: int | None = None,
    project: str | None = None,
    trace_id: str | None = None,
) -> CallRecord:
    call = LLMCall(
        operation=operation, provider=provider, request_model=model,
        input_tokens=tokens[0], output_tokens=tokens[1], duration_s=duration,
        is_error=error is not None, error_type=error.type if error else None,
        retrieval_documents=documents, project=project,
    )
    return CallRecord(
        call=call,
        cost=Cost(cost, None, None, "price_table") if cost is not None else None,
        error=error,
        end_time_s=t,
        trace_id=trace_id,
    )


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


class Receiver:
    """A loopback HTTP server that records JSON POST bodies and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.paths.append(self.path)
                    receiver.bodies.append(json.loads(raw or b"null"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self) -> list[Any]:
        with self._lock:
            return list(self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- real Alertmanager --------------------------------------------------------------------------
def alertmanager_binary() -> str | None:
    """Debian ships it as prometheus-alertmanager; upstream tarballs as alertmanager."""
    return shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


class Alertmanager:
    """A real Alertmanager on 127.0.0.1, routing everything to ``hook_url`` after 1 s."""

    def __init__(self, binary: str, workdir: Path, hook_url: str) -> None:
        config = workdir / "alertmanager.yml"
        config.write_text(
            "route:\n"
            "  receiver: hook\n"
            "  group_by: [alertname]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: hook\n"
            "    webhook_configs:\n"
            f"      - url: {hook_url}/am\n"
            "        send_resolved: true\n"
        )
        (workdir / "data").mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (workdir / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = workdir / "alertmanager.log"

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError("alertmanager exited:\n" + self.log_path.read_text())
            try:
                return httpx.get(self.url + "/-/ready", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, step=0.1)

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v2/alerts", timeout=5.0)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._log.close()


def run_alertmanager(binary: str, workdir: Path, hook_url: str) -> Iterator[Alertmanager]:
    am = Alertmanager(binary, workdir, hook_url)
    try:
        am.wait_ready()
        yield am
    finally:
        am.stop()
