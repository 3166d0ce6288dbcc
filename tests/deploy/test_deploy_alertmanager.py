"""alertmanager.yml: checked by the real amtool (Alertmanager 0.25, Debian package
`prometheus-alertmanager`), including the example routes once they are switched on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import CONFIG, container_path, load_yaml, run, services, tool

ALERTMANAGER_YML = CONFIG / "alertmanager.yml"
SECRETS = CONFIG / "secrets"
AMTOOL = tool("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None,
    reason="amtool not installed "
           "(Debian: apt-get install --no-install-recommends prometheus-alertmanager)",
)


def with_example_routes(path: Path) -> Path:
    """alertmanager.yml with the commented example routes switched on, as the file says."""
    lines = ALERTMANAGER_YML.read_text(encoding="utf-8").splitlines()
    begin = next(i for i, line in enumerate(lines) if "--- BEGIN example routes" in line)
    end = next(i for i, line in enumerate(lines) if "--- END example routes" in line)
    for i in range(begin + 1, end):
        lines[i] = re.sub(r"^(\s*)# ?", r"\1", lines[i], count=1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@needs_amtool
def test_amtool_accepts_the_alertmanager_config() -> None:
    assert AMTOOL is not None
    result = run([AMTOOL, "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_example_routes_are_valid_and_route_by_severity(tmp_path: Path) -> None:
    assert AMTOOL is not None
    config = with_example_routes(tmp_path / "alertmanager.yml")
    result = run([AMTOOL, "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr

    def receivers(*labels: str) -> str:
        routed = run([AMTOOL, "config", "routes", "test", f"--config.file={config}", *labels])
        assert routed.returncode == 0, routed.stdout + routed.stderr
        return routed.stdout.strip()

    assert receivers("alertname=LLMErrorRateCritical", "severity=critical",
                     "provider=openai", "model=gpt-4o") == "email,slack,webhook"
    assert receivers("alertname=LLMDailyCostHigh", "severity=warning") == "slack"
    assert receivers("alertname=LLMInferenceSlow", "severity=warning") == "slack,webhook"
    assert receivers("alertname=Something", "severity=info") == "default"


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def test_out_of_the_box_alerts_are_shown_but_notify_no_one() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    default = config["route"]["receiver"]
    (receiver,) = [r for r in config["receivers"] if r["name"] == default]
    assert set(receiver) == {"name"}
    assert "routes" not in config["route"]


def test_webhook_slack_and_email_receivers_are_ready() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    kinds = {r["name"]: {k for k in r if k.endswith("_configs")} for r in config["receivers"]}
    assert kinds["webhook"] == {"webhook_configs"}
    assert kinds["slack"] == {"slack_configs"}
    assert kinds["email"] == {"email_configs"}


def test_secrets_are_read_from_mounted_files_never_inline() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    inline = {"api_url", "slack_api_url", "auth_password", "smtp_auth_password", "credentials",
              "password", "bearer_token"}
    pairs = list(walk(config))
    assert not [k for k, _ in pairs if k in inline]
    files = [v for k, v in pairs if k.endswith("_file")]
    assert {"api_url_file", "smtp_auth_password_file", "credentials_file"} <= {
        k for k, _ in pairs if k.endswith("_file")}
    mounted = container_path(services()["alertmanager"], SECRETS)
    for path in files:
        assert Path(path).parent == Path(mounted), path
        documented = (SECRETS / "README.md").read_text(encoding="utf-8")
        assert f"`{Path(path).name}`" in documented, f"{path} is not described in secrets/README"
    ignored = (SECRETS / ".gitignore").read_text(encoding="utf-8").split()
    assert "*" in ignored  # filled-in secrets are never committed


def test_inhibition_uses_the_labels_the_exported_rules_carry() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    rules = load_yaml(CONFIG / "alert-rules.yml")
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            alertname = re.fullmatch(r'alertname="(\w+)"', matcher)
            assert alertname and alertname.group(1) in names, matcher
        for label in inhibit["equal"]:
            # the exported rules copy provider/model to these short labels (label_replace)
            assert all(f'"{label}", "$1"' in r["expr"] for g in rules["groups"]
                       for r in g["rules"] if r["alert"].startswith("LLMErrorRate")), label
    assert set(config["route"]["group_by"]) >= {"alertname", "provider", "model"}
