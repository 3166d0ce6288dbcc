"""``otel-llm serve`` settings and command line: flags > OTEL_LLM_* > defaults, validated early."""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from otel_llm.gateway import Gateway, GatewaySettings
from otel_llm.gateway.cli import add_parser, main, run
from otel_llm.gateway.config import OPTIONS
from otel_llm.gateway.exporter import GRPC_METHODS
from tests.gateway.gateway_support import llm_request, sample, wait_until

DESIGN_FLAGS = (
    "--host",
    "--grpc-port",
    "--http-port",
    "--forward",
    "--forward-protocol",
    "--db",
    "--rules",
    "--prices",
    "--token",
    "--queue-size",
    "--queue-dir",
    "--jaeger-url",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-llm")
    add_parser(parser.add_subparsers())
    return parser


def test_serve_has_every_flag_of_the_design() -> None:
    help_text = _parser().parse_args(["serve"]).handler.__module__
    assert help_text == "otel_llm.gateway.cli"
    flags = {option.flag for option in OPTIONS}
    assert set(DESIGN_FLAGS) <= flags
    assert {"--tls-cert", "--tls-key", "--max-request-bytes", "--shutdown-timeout"} <= flags


def test_defaults() -> None:
    settings = GatewaySettings.resolve({}, {})
    assert (settings.host, settings.grpc_port, settings.http_port) == ("127.0.0.1", 4317, 4318)
    assert settings.forward is None and settings.forward_protocol == "grpc"
    assert settings.db == "sqlite:///otel-llm.db" and settings.enrich


def test_flags_win_over_env_which_wins_over_defaults() -> None:
    args = vars(
        _parser().parse_args(["serve", "--grpc-port", "0", "--no-enrich", "--queue-size", "7"])
    )
    env = {
        "OTEL_LLM_GRPC_PORT": "5000",
        "OTEL_LLM_HTTP_PORT": "5001",
        "OTEL_LLM_FORWARD": "https://c:4317",
        "OTEL_LLM_ENRICH": "true",
        "OTEL_LLM_TOKEN": "t",
        "OTEL_LLM_SHUTDOWN_TIMEOUT": "2.5",
    }
    settings = GatewaySettings.resolve(args, env)
    assert settings.grpc_port == 0 and settings.http_port == 5001
    assert settings.enrich is False and settings.queue_size == 7
    assert settings.forward == "https://c:4317" and settings.token == "t"
    assert settings.shutdown_timeout == 2.5
    assert repr(settings) != "t" and "token" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_LLM_GRPC_PORT": "70000"}, "--grpc-port must be between 0 and 65535"),
        ({"OTEL_LLM_GRPC_PORT": "abc"}, "OTEL_LLM_GRPC_PORT: expected an integer"),
        ({"OTEL_LLM_FORWARD": "localhost:4317"}, "--forward must be an http:// or https:// URL"),
        ({"OTEL_LLM_FORWARD_PROTOCOL": "thrift"}, "--forward-protocol must be one of"),
        ({"OTEL_LLM_QUEUE_SIZE": "0"}, "--queue-size must be at least 1"),
        ({"OTEL_LLM_TLS_CERT": "/nonexistent.pem"}, "--tls-cert and --tls-key go together"),
        ({"OTEL_LLM_PRICES": "/nonexistent.yaml"}, "--prices: no such file"),
        ({"OTEL_LLM_ENRICH": "maybe"}, "expected true or false"),
        ({"OTEL_LLM_TOKEN": " "}, None),  # blank env values count as unset
    ],
)
def test_invalid_settings_are_refused_early(env: dict[str, str], message: str | None) -> None:
    if message is None:
        assert GatewaySettings.resolve({}, env).token is None
        return
    with pytest.raises(ValueError, match=message):
        GatewaySettings.resolve({}, env)


def test_cli_exit_code_on_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--grpc-port", "99999"]) == 2
    assert "--grpc-port must be between 0 and 65535" in capsys.readouterr().err


def test_cli_exit_code_on_a_port_in_use(
    make_gateway: Callable[..., Gateway], capsys: pytest.CaptureFixture[str]
) -> None:
    busy = make_gateway()
    port = busy.http_address.rsplit(":", 1)[1]
    assert main(["--grpc-port", "0", "--http-port", port]) == 1
    assert "cannot listen for OTLP/HTTP" in capsys.readouterr().err


def test_gateway_lifecycle_is_idempotent() -> None:
    gateway = Gateway(GatewaySettings(grpc_port=0, http_port=0))
    gateway.shutdown()  # before start: fine
    gateway.start()  # after shutdown: stays stopped
    gateway.shutdown()
    with Gateway(GatewaySettings(grpc_port=0, http_port=0)) as running:
        running.start()
        assert (
            running.banner()
            == f"otel-llm serve: grpc={running.grpc_address} http={running.http_address}"
        )
        assert not running.grpc_address.endswith(":0")


def test_others_can_mount_routes_on_the_same_port(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(start=False, token="tok")

    @gateway.app.get("/api/v1/secret")
    def secret(request: Request) -> JSONResponse:
        if not gateway.authorized(request):  # the same --token guards mounted routes
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"status": "ok"})

    gateway.start()
    base = f"http://{gateway.http_address}"
    assert httpx.get(base + "/api/v1/secret").status_code == 401
    reply = httpx.get(base + "/api/v1/secret", headers={"Authorization": "Bearer tok"})
    assert reply.json() == {"status": "ok"}
    assert httpx.get(base + "/metrics").status_code == 200


def test_tls_on_both_receivers(make_gateway: Callable[..., Gateway], tmp_path: Any) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate here: {exc}")
    gateway = make_gateway(tls_cert=str(cert), tls_key=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(gateway.grpc_address, credentials) as channel:
        channel.unary_unary(GRPC_METHODS["traces"])(llm_request(1).SerializeToString(), timeout=10)
    reply = httpx.post(
        f"https://{gateway.http_address}/v1/traces",
        content=llm_request(1).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    assert reply.status_code == 200
    assert sample(gateway.registry, "otel_llm_gateway_received_total") == 2
    with pytest.raises(httpx.HTTPError):  # plaintext is refused
        httpx.post(f"http://{gateway.http_address}/v1/traces", content=b"", timeout=5)


def test_run_wires_observers_and_routes() -> None:
    """What the top-level CLI does: observers for alerts/store, routes for the API."""
    seen: list[Any] = []
    outcome: dict[str, Any] = {}

    class Observer:
        def observe(self, record: Any) -> None:
            seen.append(record)

    def drive(gateway: Gateway) -> None:
        try:
            assert wait_until(
                lambda: gateway.http.port is not None and gateway.grpc.port is not None
            )
            base = f"http://{gateway.http_address}"
            outcome["api"] = httpx.get(base + "/api/v1/ping", timeout=5).json()
            outcome["export"] = httpx.post(
                base + "/v1/traces",
                content=llm_request(2).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=5,
            ).status_code
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def setup(gateway: Gateway) -> None:
        gateway.app.add_api_route("/api/v1/ping", lambda: {"pong": True}, methods=["GET"])
        threading.Thread(target=drive, args=(gateway,), daemon=True).start()

    args = _parser().parse_args(["serve", "--grpc-port", "0", "--http-port", "0"])
    assert run(args, observers=[Observer()], setup=setup) == 0
    assert outcome == {"api": {"pong": True}, "export": 200}
    assert len(seen) == 2 and seen[0].call.request_model == "gpt-4o"


def test_public_surface() -> None:
    import otel_llm.gateway as package

    assert sorted(package.__all__) == sorted(
        ["Gateway", "GatewaySettings", "Batch", "Component", "Consumer", "check_protobuf_backend"]
    )
    assert all(hasattr(package, name) for name in package.__all__)
    assert package.check_protobuf_backend() == "upb"
