"""deploy/alertmanager/alertmanager.yml: the route-by-team example, checked by amtool itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.system.deploy._helpers import DEPLOY, JOB, REPO, output, run
from tests.tooling import require_tool

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def _route(*labels: str) -> str:
    """The receiver amtool routes an alert with these labels (key=value) to."""
    amtool = require_tool("amtool")
    result = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels])
    assert result.returncode == 0, output(result)
    return result.stdout.strip()


def _config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return data


def test_amtool_check_config_passes() -> None:
    amtool = require_tool("amtool")
    result = run([amtool, "check-config", str(CONFIG)])
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)


def test_amtool_check_config_can_fail(tmp_path: Path) -> None:
    """The control: a route to a receiver that does not exist is refused."""
    amtool = require_tool("amtool")
    config = _config()
    config["route"]["routes"][0]["routes"][0]["receiver"] = "payments-typo"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run([amtool, "check-config", str(path)])
    assert result.returncode != 0, output(result)
    assert "payments-typo" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # Per-agent alerts, as the rules label them (job, workspace, agent_id, team, severity).
        ({"alertname": "ElevenLabsAgentLinkExpiringSoon", "team": "payments"}, "payments"),
        ({"alertname": "ElevenLabsAgentLinkExpired", "team": "payments"}, "payments"),
        ({"alertname": "ElevenLabsAgentLinkExpiringSoon", "team": "support"}, "support"),
        ({"alertname": "ElevenLabsAgentLinkMissing", "team": "support"}, "support-pager"),
        # An idle agent's alert is severity info (issue 19): a mail, not a page.
        (
            {"alertname": "ElevenLabsAgentLinkMissing", "team": "support", "severity": "info"},
            "support",
        ),
        ({"alertname": "ElevenLabsAgentArchivedLinkLive", "team": "support"}, "support"),
        # No owner label, or a team without a route: the platform team.
        ({"alertname": "ElevenLabsAgentLinkExpiringSoon"}, "platform"),
        ({"alertname": "ElevenLabsAgentNotFound", "team": "growth"}, "platform"),
        # The monitor's own alerts and the workspace alerts carry no team.
        ({"alertname": "ElevenLabsLinkMonitorDown", "instance": "10.0.0.1:9877"}, "platform"),
        ({"alertname": "ElevenLabsWorkspaceKeyRejected", "namespace": "links"}, "platform"),
    ],
)
def test_alerts_reach_their_teams_receiver(labels: dict[str, str], receiver: str) -> None:
    severity = {
        "ElevenLabsAgentLinkExpiringSoon": "warning",
        "ElevenLabsAgentLinkExpired": "critical",
        "ElevenLabsAgentLinkMissing": "critical",
        "ElevenLabsAgentNotFound": "critical",
        "ElevenLabsAgentArchivedLinkLive": "warning",
        "ElevenLabsLinkMonitorDown": "critical",
        "ElevenLabsWorkspaceKeyRejected": "critical",
    }[labels["alertname"]]
    alert = {"job": JOB, "severity": severity, "workspace": "prod", "agent_id": "a1", **labels}
    assert _route(*(f"{key}={value}" for key, value in alert.items())) == receiver


def test_other_alerts_keep_the_default_route() -> None:
    assert _route("alertname=NodeDown", "team=payments") == "default"


def test_the_monitors_alerts_are_grouped_by_workspace_and_team() -> None:
    (monitor,) = _config()["route"]["routes"]
    assert monitor["matchers"] == [f'job="{JOB}"']
    # Two monitors in two namespaces are two groups.
    assert monitor["group_by"] == ["namespace", "workspace", "team"]
    teams = {route["matchers"][0] for route in monitor["routes"]}
    assert teams == {'team="payments"', 'team="support"'}
    # Every receiver a route names exists (amtool checks it too).
    names = {receiver["name"] for receiver in _config()["receivers"]}
    assert {"default", "platform", "payments", "support", "support-pager"} == names


def test_the_operations_guide_shows_the_example() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "deploy/alertmanager/alertmanager.yml" in guide
    assert 'matchers: [team="payments"]' in guide


def test_a_failing_workspace_inhibits_its_agents_poll_alerts() -> None:
    """Defence in depth: the rules already hold the per-agent poll alerts back."""
    rule = _inhibition_of("ElevenLabsAgentLinkPollingFailing")
    (source,) = rule["source_matchers"]
    for alert in (
        "ElevenLabsWorkspaceKeyRejected",
        "ElevenLabsWorkspaceApiUnreachable",
        "ElevenLabsWorkspacePollingFailing",
    ):
        assert alert in source
    assert rule["equal"] == ["job", "namespace", "workspace"]
    # Every inhibition keeps two monitors in two namespaces apart.
    assert all("namespace" in rule["equal"] for rule in _config()["inhibit_rules"])


def test_the_readme_shows_the_example() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "deploy/alertmanager/alertmanager.yml" in readme
    assert "group_by: [namespace, workspace, team]" in readme


def test_a_key_of_another_workspace_inhibits_its_agents_not_found_alerts() -> None:
    """Defence in depth, as above: the rules already hold the per-agent alerts back."""
    rule = _inhibition_of("ElevenLabsAgentNotFound")
    assert rule["source_matchers"] == ['alertname="ElevenLabsWorkspaceAgentsNotFound"']
    assert rule["equal"] == ["job", "namespace", "workspace"]


def _inhibition_of(alert: str) -> dict[str, Any]:
    """The one inhibit rule whose target is `alert`."""
    rules: list[dict[str, Any]] = _config()["inhibit_rules"]
    (rule,) = [r for r in rules if r["target_matchers"] == [f'alertname="{alert}"']]
    return rule
