"""Every error of the API and health routes leaves in the one error shape (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from otel_llm.server import create_app
from otel_llm.store import CallStore, StoreUnavailable, Summary, Window

TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def assert_error_shape(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "timestamp", "request_id", "path"}
    assert set(body["error"]) == {"code", "message", "category", "severity", "details"}
    assert body["error"]["severity"] in ("low", "medium", "high", "critical")
    assert isinstance(body["error"]["details"], dict)
    assert body["timestamp"].endswith("Z")
    assert body["path"] == response.request.url.path
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    if code is not None:
        assert body["error"]["code"] == code
    return body  # type: ignore[no-any-return]


class FailingStore(CallStore):
    """A store whose queries fail the way a bug or an outage would."""

    mode = "ok"

    def summary(self, window: Window, project: str | None = None) -> Summary:
        if self.mode == "bug":
            raise RuntimeError("password=hunter2 at /srv/secret/path.py line 42")
        if self.mode == "down":
            raise StoreUnavailable("the call store is unavailable: host db.internal refused")
        return super().summary(window, project)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FailingStore]:
    store = FailingStore(f"sqlite:///{tmp_path / 'calls.db'}")
    store.start()
    yield store
    store.shutdown()


@pytest.fixture
def client(store: FailingStore) -> Iterator[TestClient]:
    app = create_app(store, token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_unknown_paths_are_404_in_the_error_shape(client: TestClient) -> None:
    assert_error_shape(client.get("/api/v1/nope", headers=AUTH), 404, "NOT_FOUND")
    assert_error_shape(client.get("/no/such/page"), 404, "NOT_FOUND")


def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    body = assert_error_shape(client.delete("/api/v1/metrics/summary", headers=AUTH), 405)
    assert body["error"]["category"] == "validation"


@pytest.mark.parametrize("query", [
    "days=0", "days=91", "days=seven", "interval=minute", "start=yesterday",
    "start=2025-03-10T00:00:00Z&end=2025-03-01T00:00:00Z",
    "start=2020-01-01T00:00:00Z&end=2025-01-01T00:00:00Z",
])
def test_invalid_parameters_are_422(client: TestClient, query: str) -> None:
    path = "/api/v1/metrics/timeline?" + query
    body = assert_error_shape(client.get(path, headers=AUTH), 422)
    assert body["error"]["category"] == "validation"


def test_too_many_buckets_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/metrics/timeline?interval=hour&start=2024-01-01T00:00:00"
                          "&end=2024-12-31T00:00:00", headers=AUTH)
    assert "buckets" in assert_error_shape(response, 422)["error"]["message"]


def test_validation_details_name_the_field_but_never_echo_the_input(client: TestClient) -> None:
    response = client.post("/api/v1/feedback", headers=AUTH,
                           json={"trace_id": "sk-live-SECRETSECRETSECRET", "rating": 3})
    body = assert_error_shape(response, 422, "VALIDATION_ERROR")
    assert "SECRETSECRET" not in response.text
    assert ["body", "trace_id"] in [e["loc"] for e in body["error"]["details"]["errors"]]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN}])
def test_missing_or_wrong_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for path in ("/api/v1/metrics/summary", "/api/v1/calls", "/api/v1/alerts"):
        response = client.get(path, headers=headers)
        body = assert_error_shape(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert body["error"]["category"] == "authentication"
        assert TOKEN not in response.text


def test_health_and_dashboard_need_no_token(client: TestClient) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/").status_code == 200


def test_an_unexpected_exception_is_a_500_that_says_nothing(
    client: TestClient, store: FailingStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.mode = "bug"
    response = client.get("/api/v1/metrics/summary", headers=AUTH)
    body = assert_error_shape(response, 500, "INTERNAL_ERROR")
    for leak in ("hunter2", "RuntimeError", "secret", "line 42", "Traceback"):
        assert leak not in response.text
    assert body["error"]["category"] == "system_error"
    assert any(r.exc_info for r in caplog.records)  # logged with its stack trace


def test_a_store_outage_is_a_503_without_internals(client: TestClient,
                                                   store: FailingStore) -> None:
    store.mode = "down"
    response = client.get("/api/v1/metrics/summary", headers=AUTH)
    body = assert_error_shape(response, 503, "STORE_UNAVAILABLE")
    assert body["error"]["category"] == "external_service"
    assert "db.internal" not in response.text


def test_request_id_round_trips(client: TestClient) -> None:
    response = client.get("/api/v1/nope", headers={**AUTH, "X-Request-ID": "req-42.abc"})
    assert assert_error_shape(response, 404)["request_id"] == "req-42.abc"
    ok = client.get("/api/v1/metrics/summary", headers={**AUTH, "X-Request-ID": "req-43"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "req-43"
    bad = client.get("/api/v1/nope", headers={**AUTH, "X-Request-ID": "bad id with spaces"})
    assert assert_error_shape(bad, 404)["request_id"] != "bad id with spaces"


def test_feedback_errors(client: TestClient) -> None:
    trace = "ab" * 16
    nothing = client.post("/api/v1/feedback", headers=AUTH, json={"trace_id": trace})
    assert_error_shape(nothing, 422)
    outside = client.post("/api/v1/feedback", headers=AUTH, json={
        "trace_id": trace, "clicked_positions": [3], "retrieved_ids": ["a", "b"]})
    assert assert_error_shape(outside, 422)["error"]["details"]["position"] == 3
    unknown = client.post("/api/v1/feedback", headers=AUTH,
                          json={"trace_id": trace, "clicked_positions": [1]})
    assert_error_shape(unknown, 422, "RETRIEVAL_UNKNOWN")
    rating = client.post("/api/v1/feedback", headers=AUTH,
                         json={"trace_id": trace, "rating": 6, "scale": 5})
    assert_error_shape(rating, 422)
    extra = client.post("/api/v1/feedback", headers=AUTH,
                        json={"trace_id": trace, "rating": 1, "unknown": True})
    assert_error_shape(extra, 422)
