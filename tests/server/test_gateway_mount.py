"""``otel-llm serve`` wiring: OTLP in, calls recorded, API and dashboard on the same HTTP port,
behind the gateway's ``--token``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from otel_llm.gateway import Gateway, GatewaySettings
from otel_llm.server import mount
from otel_llm.store import CallStore
from tests.gateway.gateway_support import FAILED, OFFICIAL, make_request, make_span
from tests.pg_fixtures import wait_until

TOKEN = "gateway-token"


def test_api_on_the_gateway_port_sees_the_calls_it_received(tmp_path: Path) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}", flush_interval_s=0.05)
    gateway = Gateway(
        GatewaySettings(grpc_port=0, http_port=0, token=TOKEN, db=None, shutdown_timeout=1),
        observers=[store], registry=CollectorRegistry(),
    )
    mount(gateway.app, store, authorized=gateway.authorized, jaeger_url="http://jaeger.test")
    store.start()
    gateway.start()
    base = f"http://{gateway.http_address}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        spans = [make_span("chat gpt-4o", OFFICIAL) for _ in range(3)]
        spans.append(make_span("chat gpt-4o", FAILED, error=True))
        response = httpx.post(f"{base}/v1/traces", content=make_request(*spans).SerializeToString(),
                              headers={**auth, "Content-Type": "application/x-protobuf"})
        assert response.status_code == 200
        assert wait_until(lambda: store.written == 4, 10)

        # The spans ended at 2023-11-14T22:13:21.5Z.
        window = {"start": "2023-11-14T00:00:00Z", "end": "2023-11-15T00:00:00Z"}
        summary = httpx.get(f"{base}/api/v1/metrics/summary", params=window, headers=auth)
        assert summary.status_code == 200, summary.text
        got = summary.json()
        assert (got["total_calls"], got["total_input_tokens"], got["total_output_tokens"]) == (
            4, 3000, 600)
        assert got["success_rate"] == 75.0 and got["total_cost_usd"] > 0
        assert got["avg_inference_time_ms"] == 1500.0
        calls = httpx.get(f"{base}/api/v1/calls", headers=auth).json()["calls"]
        assert {c["trace_url"] for c in calls} == {
            f"http://jaeger.test/trace/{s.trace_id.hex()}" for s in spans}
        assert {c["service"] for c in calls} == {"rag-api"}

        denied = httpx.get(f"{base}/api/v1/metrics/summary")
        assert denied.status_code == 401 and denied.json()["error"]["category"] == "authentication"
        assert httpx.get(f"{base}/health/ready").status_code == 200
        assert httpx.get(f"{base}/").headers["content-type"].startswith("text/html")
        assert httpx.get(f"{base}/metrics").status_code == 200
    finally:
        gateway.shutdown()
        store.shutdown()


def test_jaeger_url_precedence_flag_over_env_over_rules_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm.serve import wire

    rules = tmp_path / "rules.yaml"
    rules.write_text("jaeger_url: http://from-file:16686\nrules: []\n")
    monkeypatch.setenv("OTEL_LLM_JAEGER_URL", "http://from-env:16686")
    for flag, expected in (("http://from-flag:16686", "from-flag"), (None, "from-env")):
        settings = GatewaySettings(grpc_port=0, http_port=0, rules=str(rules), jaeger_url=flag)
        gateway = Gateway(settings, registry=CollectorRegistry())
        cleanup = wire(gateway)
        try:
            assert gateway.alerts is not None
            assert expected in (gateway.alerts.evaluator._jaeger or "")
        finally:
            cleanup()


def test_ready_through_a_downstream_outage_until_the_queue_is_full(tmp_path: Path) -> None:
    from otel_llm.serve import wire

    settings = GatewaySettings(
        grpc_port=0, http_port=0, forward="http://127.0.0.1:1",  # nothing listens there
        queue_size=4, db=f"sqlite:///{tmp_path / 'calls.db'}", shutdown_timeout=0.5,
    )
    gateway = Gateway(settings, registry=CollectorRegistry())
    cleanup = wire(gateway)
    gateway.start()
    base = f"http://{gateway.http_address}"
    try:
        assert httpx.get(f"{base}/health/ready").status_code == 200
        body = make_request(*(make_span("chat gpt-4o", OFFICIAL) for _ in range(4)))
        response = httpx.post(f"{base}/v1/traces", content=body.SerializeToString(),
                              headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 200  # queued: the downstream is down, not the gateway
        assert wait_until(lambda: httpx.get(f"{base}/health/ready").status_code == 503, 10)
        checks = httpx.get(f"{base}/health/ready").json()["checks"]
        assert checks["queue"]["status"] == "fail" and checks["store"]["status"] == "ok"
    finally:
        gateway.shutdown()
        cleanup()
