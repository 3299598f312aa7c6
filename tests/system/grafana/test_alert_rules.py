"""Grafana-managed alert rules: file-provisioning format, one rule per Prometheus alert."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.system.grafana.support import DATASOURCES, JOB, PROMETHEUS_RULES, read_yaml

EXPECTED_ALERTS = {
    "ElevenLabsAgentLinkExpiringSoon": "warning",  # within the agent's warning threshold (7d)
    "ElevenLabsAgentLinkExpiryCritical": "critical",  # within its critical threshold (1d)
    "ElevenLabsAgentLinkExpired": "critical",
    "ElevenLabsAgentLinkMissing": "critical",
    "ElevenLabsAgentNotFound": "critical",
    "ElevenLabsAgentLinkPollingFailing": "warning",  # failing for 30m
    "ElevenLabsAgentArchivedLinkLive": "warning",  # an archived agent's link still has a token
    "ElevenLabsWorkspaceKeyRejected": "critical",  # the workspace's key answered 401
    "ElevenLabsWorkspaceAgentsNotFound": "critical",  # its key sees none of its agents (404)
    "ElevenLabsWorkspaceApiUnreachable": "warning",  # its API host cannot be reached
    "ElevenLabsWorkspacePollingFailing": "warning",  # rate limited or failing as a whole
    "ElevenLabsLinkMonitorDown": "critical",
    "ElevenLabsLinkMonitorAbsent": "critical",
    "ElevenLabsLinkMonitorConfigReloadFailed": "warning",
    "ElevenLabsLinkMonitorCyclesIncomplete": "warning",  # overruns in the past hour, for 30m
    "ElevenLabsLinkMonitorCyclesStale": "warning",  # no full cycle for 3 poll intervals
    "ElevenLabsLinkMonitorDiscoveryFailing": "warning",  # no listing for 3 intervals, for 5m
}
# Weighted by use (issue 19): the severity above for a used agent or unknown use, info for an
# idle one, as a label of the query rather than of the rule.
WEIGHTED = {
    "ElevenLabsAgentLinkExpiringSoon",
    "ElevenLabsAgentLinkExpiryCritical",
    "ElevenLabsAgentLinkExpired",
    "ElevenLabsAgentLinkMissing",
}
THRESHOLD_TYPES = {"gt", "lt", "within_range", "outside_range"}


def rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def prometheus_alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in read_yaml(PROMETHEUS_RULES)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_provisioning_file_shape(alert_rules: dict[str, Any]) -> None:
    assert alert_rules["apiVersion"] == 1
    assert alert_rules["groups"]
    for group in alert_rules["groups"]:
        assert group["name"]
        assert group["folder"]
        assert re.fullmatch(r"\d+[smh]", group["interval"])
        assert group["rules"]


def test_one_rule_per_alert(alert_rules: dict[str, Any]) -> None:
    titles = [rule["title"] for rule in rules(alert_rules)]
    assert len(titles) == len(set(titles))
    assert set(titles) == set(EXPECTED_ALERTS)
    for rule in rules(alert_rules):
        if rule["title"] in WEIGHTED:
            assert "severity" not in rule.get("labels", {}), rule["title"]
            data = {q["refId"]: q["model"] for q in rule["data"]}
            for ref in ("A", "N"):
                # N carries the same severity, so that Grafana matches N to the alert.
                severities = re.findall(r'"severity", "(\w+)", "", ""', data[ref]["expr"])
                assert severities == [EXPECTED_ALERTS[rule["title"]], "info"], (rule["title"], ref)
        else:
            assert rule["labels"]["severity"] == EXPECTED_ALERTS[rule["title"]], rule["title"]


def test_same_alerts_as_the_prometheus_rules(alert_rules: dict[str, Any]) -> None:
    """Names, severities, for: durations and runbooks match deploy/prometheus/rules.yml."""
    expected = prometheus_alerts()
    assert {rule["title"] for rule in rules(alert_rules)} == set(expected)
    for rule in rules(alert_rules):
        twin = expected[rule["title"]]
        assert rule.get("labels", {}).get("severity") == twin.get("labels", {}).get("severity")
        if rule["title"] in WEIGHTED:
            ours = re.findall(r'"severity", "\w+"', rule["data"][0]["model"]["expr"])
            assert ours == re.findall(r'"severity", "\w+"', twin["expr"]), rule["title"]
        assert rule["for"] == twin.get("for", "0s"), rule["title"]
        assert rule["annotations"]["runbook_url"] == twin["annotations"]["runbook_url"]


def test_rule_uids(alert_rules: dict[str, Any]) -> None:
    uids = [rule["uid"] for rule in rules(alert_rules)]
    assert len(uids) == len(set(uids))
    for uid in uids:
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid), uid


@pytest.mark.parametrize("title", sorted(EXPECTED_ALERTS))
def test_query_reduce_threshold(alert_rules: dict[str, Any], title: str) -> None:
    (rule,) = [rule for rule in rules(alert_rules) if rule["title"] == title]
    data = {query["refId"]: query for query in rule["data"]}
    assert rule["condition"] in data
    # N and T, where present, only name the agent and its threshold in the annotations.
    queries = [
        q for q in rule["data"] if q["datasourceUid"] != "__expr__" and q["refId"] not in "NT"
    ]
    assert len(queries) == 1
    (query,) = queries
    assert query["model"]["expr"].strip()
    assert query["model"]["refId"] == query["refId"]
    assert query["relativeTimeRange"]["from"] > 0

    reduce = [q["model"] for q in rule["data"] if q["model"].get("type") == "reduce"]
    threshold = [q["model"] for q in rule["data"] if q["model"].get("type") == "threshold"]
    assert len(reduce) == 1
    assert len(threshold) == 1
    assert reduce[0]["expression"] == query["refId"]
    assert threshold[0]["expression"] == reduce[0]["refId"]
    assert rule["condition"] == threshold[0]["refId"]
    (condition,) = threshold[0]["conditions"]
    assert condition["evaluator"]["type"] in THRESHOLD_TYPES
    assert condition["evaluator"]["params"]
    assert rule["noDataState"] in ("OK", "NoData", "Alerting")
    assert rule["execErrState"] in ("OK", "Error", "Alerting")
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


def test_rules_use_the_provisioned_prometheus(alert_rules: dict[str, Any]) -> None:
    uids = {ds["uid"] for ds in read_yaml(DATASOURCES)["datasources"] if ds["type"] == "prometheus"}
    for rule in rules(alert_rules):
        for query in rule["data"]:
            if query["datasourceUid"] != "__expr__":
                assert query["datasourceUid"] in uids, rule["title"]


def test_no_environment_expansion_outside_annotations(alert_rules: dict[str, Any]) -> None:
    """Grafana expands $VAR from its environment in provisioned labels and queries."""

    def strings(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [s for value in node.values() for s in strings(value)]
        if isinstance(node, list):
            return [s for value in node for s in strings(value)]
        return []

    for rule in rules(alert_rules):
        rest = {key: value for key, value in rule.items() if key != "annotations"}
        assert not [s for s in strings(rest) if "$" in s], rule["title"]


@pytest.mark.parametrize(
    ("title", "level", "default"),
    [
        ("ElevenLabsAgentLinkExpiringSoon", "warning", 7 * 86400),
        ("ElevenLabsAgentLinkExpiryCritical", "critical", 86400),
    ],
)
def test_expiry_alerts_use_each_agents_thresholds_with_the_contract_defaults(
    alert_rules: dict[str, Any], title: str, level: str, default: int
) -> None:
    """Query A compares with the agent's own thresholds (7d and 1d where the monitor exports
    none) and is the seconds left within range, else 0: above 0 alerts."""
    (rule,) = [rule for rule in rules(alert_rules) if rule["title"] == title]
    data = {q["refId"]: q["model"] for q in rule["data"]}
    (model,) = [m for m in data.values() if m.get("type") == "threshold"]
    assert model["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.0]}
    expr = data["A"]["expr"]
    selector = f'elevenlabs_agent_link_threshold_seconds{{job="{JOB}",level="{level}"}}'
    assert selector in expr
    assert f"* 0 + {default}" in expr
    # T, the same threshold, words the annotation ("expires within 30d").
    assert selector in data["T"]["expr"]
    assert data["T"]["expr"].rstrip().endswith(f"* 0 + {default}")
    assert "$values.T" in rule["annotations"]["description"]


def test_agent_alerts_keep_the_name_out_of_their_identity(alert_rules: dict[str, Any]) -> None:
    """A rename must neither resolve nor restart an alert: the name is looked up, not grouped."""
    per_agent = [
        rule
        for rule in rules(alert_rules)
        if any("elevenlabs_agent_link_" in q["model"].get("expr", "") for q in rule["data"])
    ]
    assert len(per_agent) == 7
    for rule in per_agent:
        data = {q["refId"]: q for q in rule["data"]}
        assert "agent_name" not in data["A"]["model"]["expr"], rule["title"]
        assert "agent_name" not in rule.get("labels", {}), rule["title"]
        assert "elevenlabs_agent_info" in data["N"]["model"]["expr"], rule["title"]
        # The owner labels are joined in (routing), and N carries them too, so that Grafana
        # matches N to the alert (one label set must include the other).
        assert "group_left (team)" in data["A"]["model"]["expr"], rule["title"]
        assert "agent_name, team)" in data["N"]["model"]["expr"], rule["title"]
        assert "N" not in {q["model"].get("expression") for q in rule["data"]}, rule["title"]
        for key in ("summary", "description"):
            assert "$values.N" in rule["annotations"][key], (rule["title"], key)
            assert "$labels.agent_id" in rule["annotations"][key], (rule["title"], key)
