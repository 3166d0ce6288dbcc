"""Health routes with pluggable readiness checks; re-exported by :mod:`otel_llm.fastapi`."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping

import anyio
import anyio.to_thread
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from otel_llm._error_shape import _shaped

# The public module's logger: what users configure for ``otel_llm.fastapi`` applies here.
logger = logging.getLogger("otel_llm.fastapi")


# --- health routes ------------------------------------------------------------------------------
HealthCheck = Callable[[], object]
"""A readiness check: sync or async, no arguments. Fails when it returns ``False``, raises or
times out; anything else (``True``, ``None``, …) passes. Sync checks run in a worker thread."""


class HealthRoutes:
    """``{prefix}/live``, ``{prefix}/ready`` and ``{prefix}`` with pluggable readiness checks.

    ``/live`` answers 200 ``{"status": "ok"}`` while the process serves requests. ``/ready``
    and ``{prefix}`` run all checks concurrently, each bounded by ``timeout`` seconds: 200
    ``{"status": "ok", "checks": {name: {"status", "duration_ms"}}}``, or 503 in the error shape
    (``SERVICE_UNAVAILABLE``, ``details.checks``) plus the same ``status: "fail"`` and
    ``checks`` keys. A failure names only the exception type, ``timeout`` or ``returned false``;
    its detail is logged (WARNING, with stack trace) when the check turns from passing to
    failing, not on every probe. Probe failures are not counted in ``otel_llm.errors``. A sync
    check still running from an earlier probe reports ``timeout`` rather than taking another
    worker thread (a hung database ping must not starve the app's thread pool).
    """

    def __init__(self, checks: Mapping[str, HealthCheck] | None = None, *,
                 timeout: float = 2.0, prefix: str = "/health") -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.checks: dict[str, HealthCheck] = dict(checks or {})
        self.timeout = timeout
        self.prefix = "/" + prefix.strip("/")
        self._passing: dict[str, bool] = {}
        self._busy: set[str] = set()
        self._started = time.monotonic()

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Add (or replace) the readiness check ``name``."""
        self.checks[name] = check

    async def run(self) -> dict[str, dict[str, object]]:
        """Run every check; ``{name: {"status": "ok"|"fail", "duration_ms", ["error"]}}``."""
        results: dict[str, dict[str, object]] = {}

        async def one(name: str, check: HealthCheck) -> None:
            results[name] = await self._run_one(name, check)

        async with anyio.create_task_group() as group:
            for name, check in list(self.checks.items()):
                group.start_soon(one, name, check)
        return results

    def _in_thread(self, name: str, check: HealthCheck) -> object:
        try:
            return check()
        finally:  # runs when the thread ends, even after the probe gave up waiting
            self._busy.discard(name)

    async def _run_one(self, name: str, check: HealthCheck) -> dict[str, object]:
        start = time.perf_counter()
        error: str | None = None
        failure: BaseException | None = None
        try:
            with anyio.fail_after(self.timeout):
                if inspect.iscoroutinefunction(check):
                    result = await check()
                elif name in self._busy:
                    raise TimeoutError
                else:
                    self._busy.add(name)
                    result = await anyio.to_thread.run_sync(
                        self._in_thread, name, check, abandon_on_cancel=True)
                    if inspect.isawaitable(result):
                        result = await result
            if result is False:
                error = "returned false"
        except TimeoutError:
            error = "timeout"
        except Exception as exc:  # a failing check is a result, not a crash of the probe
            error, failure = type(exc).__name__, exc
        passing = error is None
        if not passing and self._passing.get(name, True):
            logger.warning("health check %s failing: %s", name, error, exc_info=failure)
        elif passing and self._passing.get(name) is False:
            logger.info("health check %s passing again", name)
        self._passing[name] = passing
        outcome: dict[str, object] = {
            "status": "ok" if passing else "fail",
            "duration_ms": round((time.perf_counter() - start) * 1000, 3),
        }
        return {**outcome, "error": error} if error is not None else outcome

    async def _ready(self, request: Request) -> Response:
        return await self._report(request, {})

    async def _health(self, request: Request) -> Response:
        return await self._report(request, {"uptime_s": round(time.monotonic() - self._started, 3)})

    @staticmethod
    async def _live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _report(self, request: Request, extra: dict[str, object]) -> Response:
        checks = await self.run()
        failing = sorted(n for n, r in checks.items() if r["status"] != "ok")
        if not failing:
            return JSONResponse({"status": "ok", "checks": checks, **extra})
        body = {"code": "SERVICE_UNAVAILABLE", "message": "not ready: " + ", ".join(failing),
                "category": "external_service", "severity": "high",
                "details": {"checks": checks}}
        return _shaped(request, body, 503, None,
                       extra={"status": "fail", "checks": checks, **extra})

    def install(self, app: FastAPI) -> None:
        """Add the three GET routes to ``app`` (tag ``health``)."""
        for path, endpoint in ((self.prefix, self._health), (self.prefix + "/live", self._live),
                               (self.prefix + "/ready", self._ready)):
            app.add_api_route(path, endpoint, methods=["GET"], tags=["health"])


def add_health_routes(app: FastAPI, checks: Mapping[str, HealthCheck] | None = None, *,
                      timeout: float = 2.0, prefix: str = "/health") -> HealthRoutes:
    """Add ``{prefix}``, ``{prefix}/live``, ``{prefix}/ready`` to ``app``; see HealthRoutes."""
    routes = HealthRoutes(checks, timeout=timeout, prefix=prefix)
    routes.install(app)
    return routes
