"""docker-compose.yml, the Dockerfile and .dockerignore. No Docker daemon runs here: the compose
file is validated by `docker-compose config` (Debian package docker-compose) and checked for
what a newcomer would trip over: missing files, unpinned images, ports open beyond loopback."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    COLLECTOR_CONFIGS,
    COMPOSE_FILE,
    ROOT,
    bind_source,
    compose,
    compose_command,
    environ_without,
    mounts,
    ports,
    run,
    services,
)

STACK = {"jaeger", "otel-collector", "otel-llm", "prometheus", "alertmanager", "grafana", "demo"}
# Published ports: the user interfaces, nothing else (container port per service).
UI_PORTS = {"jaeger": {"16686"}, "grafana": {"3000"}, "prometheus": {"9090"},
            "alertmanager": {"9093"}, "otel-llm": {"4318"}}
# Services whose image cannot run a probe, with the reason written next to `disable: true`.
# The collector image has no shell or HTTP client; the demo is a load generator that serves
# nothing (it sends traces only).
UNPROBEABLE = {"otel-collector", "demo"}
COMPOSE = compose_command()


@pytest.mark.skipif(COMPOSE is None, reason="neither docker-compose (Debian: apt-get install "
                    "--no-install-recommends docker-compose) nor `docker compose` is installed")
@pytest.mark.parametrize("variant", COLLECTOR_CONFIGS)
def test_docker_compose_validates_the_file(variant: str) -> None:
    assert COMPOSE is not None
    env = {**environ_without("COMPOSE_FILE", "COMPOSE_PROFILES"), "OTELCOL_CONFIG": variant}
    result = run([*COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"], env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_its_services() -> None:
    assert set(services()) == STACK


def test_images_are_pinned() -> None:
    for name, service in services().items():
        if "build" in service:
            assert service["image"] == "otel-llm:local", name
            continue
        image = service["image"]
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image}"
        assert "@" not in repository, name
    stack = services()
    assert stack["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")  # Jaeger v2
    assert stack["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")


def test_only_ui_ports_are_published_and_only_on_loopback() -> None:
    for name, service in services().items():
        for port in ports(service):
            assert port.host_ip == "127.0.0.1", f"{name}: {port} is not bound to 127.0.0.1"
            assert port.target in UI_PORTS.get(name, set()), f"{name}: publishes {port.target}"
    published = {name for name, s in services().items() if s.get("ports")}
    assert published == set(UI_PORTS)


@pytest.mark.parametrize("variant", COLLECTOR_CONFIGS)
def test_every_bind_mount_and_env_file_exists(variant: str) -> None:
    for name, service in services({"OTELCOL_CONFIG": variant}).items():
        for mount in mounts(service):
            if mount.bind:
                assert bind_source(mount).exists(), f"{name}: missing {mount.source}"
                assert ROOT in bind_source(mount).parents, f"{name}: {mount.source} outside repo"
            else:
                assert mount.source in compose()["volumes"], f"{name}: undeclared {mount.source}"
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            assert (ROOT / env_file).is_file(), f"{name}: missing env_file {env_file}"
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                "dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), name


_PATH_ARG = re.compile(r"(?:^|=|sqlite:///)(/[\w./-]+)$")


def test_paths_in_commands_and_environment_are_mounted() -> None:
    """A path a service is told to read or write lies in one of its mounts (a config file from
    the repository, or a named volume for state)."""
    for name, service in services().items():
        command = service.get("command", [])
        values = [str(v) for v in (command if isinstance(command, list) else command.split())]
        values += [str(v) for v in service.get("environment", {}).values()]
        targets = [Path(m.target) for m in mounts(service)]
        for value in values:
            match = _PATH_ARG.search(value)
            if not match:
                continue
            path = Path(match.group(1))
            assert any(path == t or t in path.parents for t in targets), (
                f"{name}: {path} is not inside any of its mounts {[str(t) for t in targets]}")


def test_every_service_is_health_checked_and_dependencies_wait_for_health() -> None:
    stack = services()
    for name, service in stack.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if check.get("disable"):
            assert name in UNPROBEABLE, f"{name}: healthcheck disabled"
            continue
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck without {key}"
    for name, service in stack.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in stack, f"{name} depends on unknown {dependency}"
            if dependency in UNPROBEABLE:
                assert how["condition"] == "service_started", name
            else:
                assert how["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_probes_hit_the_ports_each_service_serves() -> None:
    stack = services()
    probes = {name: " ".join(s["healthcheck"]["test"]) for name, s in stack.items()
              if not s["healthcheck"].get("disable")}
    assert "127.0.0.1:13133/status" in probes["jaeger"]        # Jaeger v2 healthcheckv2
    assert "127.0.0.1:4318/health/ready" in probes["otel-llm"]
    assert "127.0.0.1:9090/-/healthy" in probes["prometheus"]
    assert "127.0.0.1:9093/-/healthy" in probes["alertmanager"]
    assert "127.0.0.1:3000/api/health" in probes["grafana"]
    # The demo sends traces only: the gateway is the one source of the call metrics.
    assert stack["demo"]["environment"]["OTEL_METRICS_EXPORTER"] == "none"


def test_demo_runs_until_stopped_against_the_collector() -> None:
    command = services()["demo"]["command"]
    assert command[0] == "demo"
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags["--target"] == "http://otel-collector:4317"
    assert flags["--duration"] == "0"
    assert float(flags["--rate"]) > 0


def test_jaeger_trace_links_point_at_the_published_ui() -> None:
    stack = services()
    command = stack["otel-llm"]["command"]
    jaeger_url = command[command.index("--jaeger-url") + 1]
    assert jaeger_url == "http://localhost:16686"
    assert stack["demo"]["environment"]["OTEL_LLM_JAEGER_URL"] == jaeger_url
    assert any(p.published == "16686" for p in ports(stack["jaeger"]))


# --- Dockerfile -------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def test_dockerfile_installs_the_package_on_python_311_slim_as_a_non_root_user() -> None:
    base = instructions("ARG")[0]
    assert base == "PYTHON_IMAGE=python:3.11-slim"
    assert instructions("FROM") == ["${PYTHON_IMAGE}"]
    assert any(re.search(r"pip install \"\.(\[[^\]]*\])?\"", r) for r in instructions("RUN"))
    (user,) = instructions("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert instructions("ENTRYPOINT") == ['["otel-llm"]']
    assert instructions("CMD") == ['["serve"]']
    assert "4317" in instructions("EXPOSE")[0] and "4318" in instructions("EXPOSE")[0]


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/"))
               for p in prefixes):
            result = not negate
    return result


def test_every_copied_file_is_in_the_build_context() -> None:
    patterns = dockerignore()
    for args in instructions("COPY"):
        if args.startswith("--from"):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
    # What pyproject.toml's build needs (readme, package) is copied.
    copied = " ".join(instructions("COPY"))
    for needed in ("pyproject.toml", "README.md", "otel_llm"):
        assert needed in copied, needed
    for junk in (".venv", ".git", "tests", "collector-config", "x.db"):
        assert ignored(junk, patterns), f"{junk} would be sent to the Docker daemon"


def test_gateway_image_healthcheck_matches_the_compose_one() -> None:
    healthcheck = " ".join(instructions("HEALTHCHECK"))
    compose_test: list[Any] = services()["otel-llm"]["healthcheck"]["test"]
    assert compose_test[-1] in healthcheck
