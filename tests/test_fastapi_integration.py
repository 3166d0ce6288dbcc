from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from starlette.exceptions import HTTPException as StarletteHTTPException

import otel_llm
from otel_llm import semconv as sc
from otel_llm.fastapi import (
    HealthRoutes,
    add_health_routes,
    error_response,
    install_error_handlers,
    instrument_app,
)
from otel_llm.logging import setup_logging
from otel_llm.resilience import CircuitOpenError
from tests.conftest import Harness

SECRET = "sk-proj-THISISASECRETKEY1234567890"
ERROR_KEYS = {"error", "timestamp", "request_id", "path"}
INNER_KEYS = {"code", "message", "category", "severity", "details"}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Root logging as a service would set it up, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    setup_logging(stream=buffer)
    yield buffer
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)


def records(buffer: io.StringIO, logger: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
    return [r for r in lines if logger is None or r["logger"] == logger]


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int, q: int = 0) -> dict[str, int]:
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    def create(body: dict[str, int]) -> dict[str, int]:
        return body

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"db at postgres://admin:hunter2@db/prod failed, key {SECRET}")

    @app.get("/categorized/{kind}")
    def categorized(kind: str) -> None:
        errors: dict[str, Exception] = {
            "validation": otel_llm.ValidationError("bad input", details={"field": "q"}),
            "auth": otel_llm.AuthenticationError("missing token"),
            "forbidden": otel_llm.AuthorizationError("not yours"),
            "missing": otel_llm.NotFoundError("no such project"),
            "business": otel_llm.BusinessLogicError("budget exceeded"),
            "rate": otel_llm.RateLimitError("slow down", retry_after=2.5),
            "external": otel_llm.LLMServiceError("provider down", details={"password": "p"}),
            "circuit": CircuitOpenError("openai", 12.2),
            "internal": otel_llm.InternalError("invariant broken"),
        }
        raise errors[kind]

    @app.get("/http/{status}")
    def http(status: int) -> None:
        raise HTTPException(status, detail="teapot here", headers={"X-Extra": "1"})

    @app.get("/starlette")
    def starlette_error() -> None:
        raise StarletteHTTPException(409, detail="version conflict")

    @app.get("/structured")
    def structured() -> None:
        raise HTTPException(409, detail={"conflict": "version"})

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"one,", b"two,", b"three"]), media_type="text/plain")

    @app.get("/stream-broken")
    def stream_broken() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("mid-stream failure")

        return StreamingResponse(chunks())

    @app.get("/whoami")
    def whoami(request: Request) -> dict[str, str]:
        logging.getLogger("app").info("inside the handler")
        return {"request_id": request.state.request_id}

    return app


@pytest.fixture
def client(harness: Harness, log_lines: io.StringIO) -> TestClient:
    app = build_app()
    instrument_app(app, tracer_provider=harness.tracer_provider,
                   meter_provider=harness.meter_provider)
    return TestClient(app)


def server_span(harness: Harness, path: str) -> ReadableSpan:
    spans = [s for s in harness.spans()
             if s.kind is SpanKind.SERVER and (s.attributes or {}).get("url.path",
                                                   (s.attributes or {}).get("http.target")) == path]
    assert len(spans) == 1, [s.name for s in harness.spans()]
    return spans[0]


def assert_error_shape(response: Any, status: int, path: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= ERROR_KEYS
    assert set(body["error"]) == INNER_KEYS
    assert isinstance(body["error"]["details"], dict)
    assert body["path"] == path
    assert body["request_id"] == response.headers["x-request-id"]
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    return dict(body["error"])


CATEGORIZED = [
    ("validation", 400, "VALIDATION_ERROR", "validation", "low"),
    ("auth", 401, "AUTHENTICATION_ERROR", "authentication", "critical"),
    ("forbidden", 403, "AUTHORIZATION_ERROR", "authorization", "high"),
    ("missing", 404, "NOT_FOUND", "validation", "high"),
    ("business", 422, "BUSINESS_LOGIC_ERROR", "business_logic", "medium"),
    ("rate", 429, "RATE_LIMIT_EXCEEDED", "resource_error", "high"),
    ("external", 502, "LLM_SERVICE_ERROR", "external_service", "high"),
    ("circuit", 503, "CIRCUIT_OPEN", "external_service", "high"),
    ("internal", 500, "INTERNAL_ERROR", "system_error", "high"),
]


@pytest.mark.parametrize(("kind", "status", "code", "category", "severity"), CATEGORIZED)
def test_categorized_errors_keep_their_status_and_category(
    client: TestClient, kind: str, status: int, code: str, category: str, severity: str
) -> None:
    error = assert_error_shape(client.get(f"/categorized/{kind}"), status, f"/categorized/{kind}")
    assert (error["code"], error["category"], error["severity"]) == (code, category, severity)


def test_categorized_details_reach_the_body_redacted_and_retry_after_is_a_header(
    client: TestClient,
) -> None:
    rate = client.get("/categorized/rate")
    assert rate.headers["retry-after"] == "3"
    assert rate.json()["error"]["details"] == {"retry_after": 2.5}
    external = client.get("/categorized/external").json()["error"]
    assert external["details"] == {"service": "llm", "password": "[REDACTED]"}
    circuit = client.get("/categorized/circuit")
    assert circuit.json()["error"]["details"]["service"] == "openai"
    assert circuit.headers["retry-after"] == "13"


def test_http_exceptions_keep_status_and_headers(client: TestClient) -> None:
    error = assert_error_shape(client.get("/http/418"), 418, "/http/418")
    assert error["code"] == "I'M_A_TEAPOT"
    assert error["message"] == "teapot here"
    assert client.get("/http/418").headers["x-extra"] == "1"
    error = assert_error_shape(client.get("/http/503"), 503, "/http/503")
    assert (error["category"], error["code"]) == ("external_service", "SERVICE_UNAVAILABLE")
    error = assert_error_shape(client.get("/starlette"), 409, "/starlette")
    assert (error["code"], error["message"]) == ("CONFLICT", "version conflict")
    error = assert_error_shape(client.get("/structured"), 409, "/structured")
    assert error["message"] == "Conflict"
    assert error["details"] == {"detail": {"conflict": "version"}}


def test_router_errors_use_the_shape(client: TestClient) -> None:
    error = assert_error_shape(client.get("/nowhere"), 404, "/nowhere")
    assert (error["code"], error["category"]) == ("NOT_FOUND", "validation")
    error = assert_error_shape(client.delete("/items/1"), 405, "/items/1")
    assert error["code"] == "METHOD_NOT_ALLOWED"


def test_validation_errors_are_422_with_locations_but_never_the_input(
    client: TestClient,
) -> None:
    error = assert_error_shape(client.get("/items/abc", params={"q": SECRET}), 422, "/items/abc")
    assert error["code"] == "VALIDATION_ERROR"
    assert error["category"] == "validation"
    locations = [e["loc"] for e in error["details"]["errors"]]
    assert sorted(locations) == [["path", "item_id"], ["query", "q"]]
    assert all(set(e) == {"loc", "msg", "type"} for e in error["details"]["errors"])
    response = client.post("/items", content=f'{{"token": "{SECRET}"}}',
                           headers={"content-type": "application/json"})
    assert_error_shape(response, 422, "/items")
    assert SECRET not in response.text


def test_unexpected_exception_is_a_generic_500_logged_with_its_stack(
    client: TestClient, harness: Harness, log_lines: io.StringIO
) -> None:
    response = client.get("/boom")
    error = assert_error_shape(response, 500, "/boom")
    assert error == {"code": "INTERNAL_ERROR", "message": "Internal server error",
                     "category": "system_error", "severity": "high", "details": {}}
    for leak in ("RuntimeError", "hunter2", "postgres", SECRET, "Traceback", "boom"):
        assert leak not in response.text.replace('"path":"/boom"', "")
    [logged] = records(log_lines, "otel_llm.fastapi")
    assert logged["level"] == "ERROR"
    assert "Traceback" in logged["exception"] and "RuntimeError" in logged["exception"]
    assert SECRET not in json.dumps(logged) and "hunter2" not in json.dumps(logged)
    assert logged["request_id"] == response.headers["x-request-id"]
    span = server_span(harness, "/boom")
    [event] = [e for e in span.events if e.name == "exception"]
    assert SECRET not in str(event.attributes)


def test_errors_are_counted_by_category(client: TestClient, harness: Harness) -> None:
    client.get("/categorized/rate")
    client.get("/categorized/rate")
    client.get("/boom")
    client.get("/items/x")
    client.get("/items/1")  # a success is not an error
    points = {
        (p.attributes[sc.OTEL_LLM_ERROR_CATEGORY], p.attributes[sc.ERROR_TYPE],
         p.attributes["http.response.status_code"]): p.value
        for p in harness.points(sc.METRIC_ERRORS)
    }
    assert points == {
        ("resource_error", "rate_limit", 429): 2,
        ("system_error", "_OTHER", 500): 1,
        ("validation", "invalid_request", 422): 1,
    }


def test_error_category_is_set_on_the_server_span(client: TestClient, harness: Harness) -> None:
    client.get("/categorized/external")
    attrs = server_span(harness, "/categorized/external").attributes or {}
    assert attrs[sc.OTEL_LLM_ERROR_CATEGORY] == "external_service"
    assert attrs[sc.OTEL_LLM_ERROR_SEVERITY] == "high"


@pytest.mark.parametrize("supplied", ["abc-123", "req.2024_01.x", "A" * 128])
def test_well_formed_request_id_round_trips(client: TestClient, supplied: str) -> None:
    ok = client.get("/whoami", headers={"X-Request-ID": supplied})
    assert ok.headers["x-request-id"] == supplied
    assert ok.json() == {"request_id": supplied}
    failed = client.get("/categorized/missing", headers={"X-Request-ID": supplied})
    assert failed.headers["x-request-id"] == supplied
    assert failed.json()["request_id"] == supplied


@pytest.mark.parametrize("malformed", ["", "has space", "A" * 129, "<script>", "a/b", "ü"])
def test_malformed_request_id_is_replaced_by_the_trace_id(
    client: TestClient, harness: Harness, malformed: str
) -> None:
    response = client.get("/whoami", headers=[(b"X-Request-ID", malformed.encode())])
    trace_id = format(server_span(harness, "/whoami").context.trace_id, "032x")
    assert response.headers["x-request-id"] == trace_id
    assert response.json() == {"request_id": trace_id}


def test_request_id_and_trace_ids_reach_logs_inside_the_request(
    client: TestClient, harness: Harness, log_lines: io.StringIO
) -> None:
    client.get("/whoami", headers={"X-Request-ID": "rid-7"})
    span = server_span(harness, "/whoami")
    [inside] = records(log_lines, "app")
    assert inside["request_id"] == "rid-7"
    assert inside["trace_id"] == format(span.context.trace_id, "032x")
    assert (span.attributes or {})["http.request.header.x-request-id"] == ("rid-7",)


def test_one_access_log_record_per_request(
    client: TestClient, harness: Harness, log_lines: io.StringIO
) -> None:
    client.get("/items/5?q=1", headers={"X-Request-ID": "acc-1"})
    client.get("/boom", headers={"X-Request-ID": "acc-2"})
    first, second = records(log_lines, "otel_llm.access")
    assert {k: first[k] for k in ("method", "path", "status", "client_ip", "request_id")} == {
        "method": "GET", "path": "/items/5", "status": 200, "client_ip": "testclient",
        "request_id": "acc-1"}
    assert first["duration_ms"] >= 0
    assert first["trace_id"] == format(server_span(harness, "/items/5").context.trace_id, "032x")
    assert (second["status"], second["request_id"]) == (500, "acc-2")


def test_streaming_responses_pass_through_with_the_header(client: TestClient) -> None:
    with client.stream("GET", "/stream", headers={"X-Request-ID": "s-1"}) as response:
        assert response.headers["x-request-id"] == "s-1"
        assert b"".join(response.iter_bytes()) == b"one,two,three"


def test_failure_after_the_response_started_is_logged_and_reraised(
    client: TestClient, harness: Harness, log_lines: io.StringIO
) -> None:
    with pytest.raises(RuntimeError, match="mid-stream"):
        client.get("/stream-broken")
    [logged] = records(log_lines, "otel_llm.fastapi")
    assert "mid-stream failure" in logged["exception"]
    assert [p.value for p in harness.points(sc.METRIC_ERRORS)] == [1]


def test_error_handlers_alone_without_the_middleware(harness: Harness) -> None:
    app = build_app()
    install_error_handlers(app)
    plain = TestClient(app, raise_server_exceptions=False)
    body = plain.get("/boom").json()
    assert body["error"]["code"] == "INTERNAL_ERROR" and body["request_id"] is None
    assert SECRET not in json.dumps(body)
    assert plain.get("/categorized/auth").status_code == 401


def test_error_response_builds_the_shape_from_a_status_or_an_error(harness: Harness) -> None:
    app = FastAPI()

    @app.get("/status")
    def status(request: Request) -> Any:
        return error_response(request, status_code=401, message="token expired for bob@x.org",
                              details={"api_key": "abc", "hint": "renew"},
                              headers={"WWW-Authenticate": "Bearer"}, count=False)

    @app.get("/error")
    def error(request: Request) -> Any:
        return error_response(request, otel_llm.ValidationError("bad"), status_code=409,
                              code="CONFLICT")

    client = TestClient(app)
    response = client.get("/status")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == {
        "code": "UNAUTHORIZED", "message": "token expired for [EMAIL]",
        "category": "authentication", "severity": "critical",
        "details": {"api_key": "[REDACTED]", "hint": "renew"}}
    conflict = client.get("/error")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "CONFLICT"
    assert conflict.json()["error"]["category"] == "validation"
    assert [p.value for p in harness.points(sc.METRIC_ERRORS)] == [1]  # count=False not counted


def test_instrumenting_twice_changes_nothing(harness: Harness, log_lines: io.StringIO) -> None:
    app = build_app()
    first = instrument_app(app, tracer_provider=harness.tracer_provider)
    assert instrument_app(app, tracer_provider=harness.tracer_provider) is first
    response = TestClient(app).get("/items/1")
    assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]
    assert len(records(log_lines, "otel_llm.access")) == 1
    assert len([s for s in harness.spans() if s.kind is SpanKind.SERVER]) == 1


def test_excluded_urls_are_not_traced(harness: Harness) -> None:
    app = build_app()
    instrument_app(app, tracer_provider=harness.tracer_provider, excluded_urls=["/health.*"])
    client = TestClient(app)
    assert client.get("/health/live").status_code == 200
    assert not [s for s in harness.spans() if s.kind is SpanKind.SERVER]
    # No span: the request id falls back to a random one, still well-formed.
    assert len(client.get("/health/live").headers["x-request-id"]) == 32


# --- health -----------------------------------------------------------------------------------
def test_health_routes_pass_with_passing_checks(harness: Harness) -> None:
    app = FastAPI()

    async def async_ok() -> bool:
        return True

    routes = instrument_app(app, tracer_provider=harness.tracer_provider,
                            health={"sync": lambda: None, "async": async_ok})
    assert isinstance(routes, HealthRoutes)
    client = TestClient(app)
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ok" and set(ready["checks"]) == {"sync", "async"}
    assert client.get("/health").json()["uptime_s"] >= 0


def test_failing_raising_or_slow_checks_answer_503_in_the_error_shape(
    harness: Harness, log_lines: io.StringIO
) -> None:
    app = FastAPI()
    routes = instrument_app(app, tracer_provider=harness.tracer_provider)
    assert routes is not None
    client = TestClient(app)
    assert client.get("/health/ready").status_code == 200  # no checks yet

    def store() -> bool:
        raise ConnectionError(f"cannot reach postgres://u:{SECRET}@h/db")

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    routes.add_check("store", store)
    routes.add_check("flag", lambda: False)
    routes.add_check("slow", slow)
    routes.timeout = 0.05
    for path in ("/health/ready", "/health"):
        response = client.get(path)
        error = assert_error_shape(response, 503, path)
        body = response.json()
        assert body["status"] == "fail"
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert {n: c["error"] for n, c in body["checks"].items()} == {
            "store": "ConnectionError", "flag": "returned false", "slow": "timeout"}
        assert SECRET not in response.text and "postgres" not in response.text
    assert client.get("/health/live").status_code == 200
    warnings = [r for r in records(log_lines, "otel_llm.fastapi") if r["level"] == "WARNING"]
    assert len(warnings) == 3  # one per check turning bad, not one per probe
    assert harness.points(sc.METRIC_ERRORS) == []  # probes are not counted as errors


def test_a_hung_sync_check_holds_at_most_one_worker_thread(harness: Harness) -> None:
    release, calls = threading.Event(), []

    def hung() -> bool:
        calls.append(1)
        return release.wait(10)

    app = FastAPI()
    add_health_routes(app, {"db": hung}, timeout=0.05)
    client = TestClient(app)
    try:
        for _ in range(3):
            assert client.get("/health/ready").json()["checks"]["db"]["error"] == "timeout"
        assert calls == [1]
    finally:
        release.set()


def test_health_can_be_left_out_or_added_under_a_prefix(harness: Harness) -> None:
    app = FastAPI()
    assert instrument_app(app, tracer_provider=harness.tracer_provider, health=False) is None
    add_health_routes(app, {"ok": lambda: True}, prefix="/_status/")
    client = TestClient(app)
    assert_error_shape(client.get("/health"), 404, "/health")
    assert client.get("/_status/ready").json()["checks"]["ok"]["status"] == "ok"
    with pytest.raises(ValueError, match="timeout"):
        HealthRoutes(timeout=0)
