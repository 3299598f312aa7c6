"""Per-agent thresholds and owner labels in the alerts (issue 17), Prometheus and Grafana alike.

The cases are promtool unit tests in deploy/prometheus/rules_test.yml. Here the Grafana-managed
twins run through the same cases, and every per-agent alert of both is shown to carry the
agent's team, in whatever state it alerts on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.system.deploy._helpers import (
    DEPLOY,
    HELM_DIR,
    JOB,
    MIXIN_DIR,
    PROMETHEUS_DIR,
    output,
    rules_generator,
    run,
)
from tests.tooling import require_tool

RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
GRAFANA_RULES = DEPLOY / "grafana" / "provisioning" / "alerting" / "elevenlabs-link-monitor.yaml"
EXPIRY_ALERTS = ("ElevenLabsAgentLinkExpiringSoon", "ElevenLabsAgentLinkExpiryCritical")
CASES = (
    "per-agent thresholds decide who alerts, and the alerts carry the agent's team",
    "a rename across a restart keeps one alert with its team, and a change of team never breaks "
    "the join",
)
# The Grafana threshold types as PromQL comparisons.
COMPARISONS = {"gt": ">", "lt": "<"}


def _prometheus_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [dict(rule) for group in data["groups"] for rule in group["rules"]]


def _grafana_alerts() -> dict[str, dict[str, Any]]:
    """Each Grafana twin as a Prometheus alert: query A under its threshold, for as long."""
    document = yaml.safe_load(GRAFANA_RULES.read_text(encoding="utf-8"))
    alerts = {}
    for rule in (rule for group in document["groups"] for rule in group["rules"]):
        data = {query["refId"]: query for query in rule["data"]}
        evaluator = data[rule["condition"]]["model"]["conditions"][0]["evaluator"]
        (param,) = evaluator["params"]
        comparison = COMPARISONS[evaluator["type"]]
        alerts[rule["title"]] = {
            "alert": rule["title"],
            "expr": f"({data['A']['model']['expr']}) {comparison} {param:g}",
            "for": rule["for"],
            # None for an alert weighted by use: its query carries the severity.
            "labels": rule.get("labels", {}),
        }
    return alerts


def _promtool_test(tmp_path: Path, rules: list[dict[str, Any]], tests: list[Any]) -> str:
    promtool = require_tool("promtool")
    document = {"groups": [{"name": "owner-and-thresholds", "rules": rules}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    result = run([promtool, "test", "rules", "test.yml"], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    return result.stdout


def _expiry_cases() -> list[dict[str, Any]]:
    """rules_test.yml's threshold and owner cases for the expiry alerts, without annotations
    (the twins word them alike, from their own queries) or recording-rule checks."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    groups = []
    for group in tests["tests"]:
        if group["name"] not in CASES:
            continue
        cases = [case for case in group["alert_rule_test"] if case["alertname"] in EXPIRY_ALERTS]
        for case in cases:
            for alert in case["exp_alerts"]:
                alert.pop("exp_annotations", None)
        expressions = [
            check for check in group.get("promql_expr_test", []) if "ALERTS" in check["expr"]
        ]
        groups.append({**group, "alert_rule_test": cases, "promql_expr_test": expressions})
    assert [group["name"] for group in groups] == list(CASES)
    return groups


def test_the_grafana_expiry_twins_pass_the_threshold_and_owner_cases(tmp_path: Path) -> None:
    twins = _grafana_alerts()
    _promtool_test(tmp_path, [twins[name] for name in EXPIRY_ALERTS], _expiry_cases())


def test_the_cases_catch_a_grafana_twin_on_fixed_thresholds(tmp_path: Path) -> None:
    """The cases fail the 0.1 twin: seconds left within a fixed 1d..7d, no owner."""
    last_known = _expiry_last_known_expr()
    fixed = {
        "ElevenLabsAgentLinkExpiringSoon": f"({last_known}) - time() < 7 * 86400 >= 86400",
        "ElevenLabsAgentLinkExpiryCritical": f"({last_known}) - time() < 86400 > 0",
    }
    twins = _grafana_alerts()
    rules = [{**twins[name], "expr": fixed[name]} for name in EXPIRY_ALERTS]
    promtool = require_tool("promtool")
    document = {"groups": [{"name": "old", "rules": rules}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": _expiry_cases()}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    result = run([promtool, "test", "rules", "test.yml"], cwd=tmp_path)
    assert result.returncode != 0, output(result)
    assert CASES[0] in result.stdout + result.stderr


def _expiry_last_known_expr() -> str:
    (rule,) = [
        r
        for r in _prometheus_rules()
        if r.get("record") == "elevenlabs_agent:link_expiry_timestamp_seconds:last_known"
    ]
    expr: str = rule["expr"]
    return expr


# --- every per-agent alert carries the team, in every state it alerts on ----------------------


def _series(name: str, agent: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f',{key}="{value}"' for key, value in labels.items())
    return {
        "series": f'{name}{{job="{JOB}",instance="mon:9877",workspace="prod",'
        f'agent_id="{agent}"{extra}}}',
        "values": values,
    }


# agent -> (its state, the alert it raises)
AGENTS = {
    "a_soon": ("warning", "ElevenLabsAgentLinkExpiringSoon"),
    "a_crit": ("critical", "ElevenLabsAgentLinkExpiryCritical"),
    "a_expired": ("expired", "ElevenLabsAgentLinkExpired"),
    "a_missing": ("missing", "ElevenLabsAgentLinkMissing"),
    "a_gone": ("not_found", "ElevenLabsAgentNotFound"),
    "a_failing": ("ok", "ElevenLabsAgentLinkPollingFailing"),
    "a_archived": ("ok", "ElevenLabsAgentArchivedLinkLive"),
}
EXPIRES = {"a_soon": 3 * 86400, "a_crit": 3600 * 5, "a_expired": 60}
STATES = ("ok", "warning", "critical", "expired", "missing", "not_found", "unknown")


def _every_state_input() -> list[dict[str, str]]:
    series = []
    for agent, (state, _) in AGENTS.items():
        series.append(
            _series("elevenlabs_agent_info", agent, "1x60", agent_name=f"{agent}-bot", team="pay")
        )
        for each in STATES:
            series.append(
                _series(
                    "elevenlabs_agent_link_state", agent, f"{int(each == state)}x60", state=each
                )
            )
        polled = "0x60" if agent == "a_failing" or state == "not_found" else "1x60"
        archived = "1x60" if agent == "a_archived" else "0x60"
        series.append(_series("elevenlabs_agent_archived", agent, archived))
        series.append(_series("elevenlabs_agent_link_poll_success", agent, polled))
        if agent in EXPIRES:
            series.append(
                _series(
                    "elevenlabs_agent_link_expiry_timestamp_seconds", agent, f"{EXPIRES[agent]}x60"
                )
            )
        series.append(_series("elevenlabs_agent_link_token_missing", agent, "0x60"))
    return series


def _every_state_cases(severities: dict[str, str]) -> list[dict[str, Any]]:
    cases = []
    for agent, (_, alert) in AGENTS.items():
        labels = {
            "severity": severities[alert],
            "job": JOB,
            "workspace": "prod",
            "agent_id": agent,
            "team": "pay",
        }
        # 40m: past the longest for: (30m); a_expired expired at 1m.
        cases.append(
            {"eval_time": "40m", "alertname": alert, "exp_alerts": [{"exp_labels": labels}]}
        )
    return cases


@pytest.mark.parametrize("source", ["prometheus", "grafana"])
def test_every_per_agent_alert_carries_the_team(tmp_path: Path, source: str) -> None:
    if source == "prometheus":
        rules = _prometheus_rules()
        for rule in rules:
            rule.pop("annotations", None)  # the labels are the point here
    else:
        twins = _grafana_alerts()
        rules = [twins[alert] for _, alert in AGENTS.values()]
    # Every agent's use is unknown here: each alert at its configured severity.
    configured = rules_generator().render()["config"]["alerts"]
    severities = {
        rule["alert"]: configured[rule["alert"]]["severity"] for rule in rules if "alert" in rule
    }
    tests = [
        {
            "name": f"{source}: every per-agent alert carries the team",
            "interval": "1m",
            "input_series": _every_state_input(),
            "alert_rule_test": _every_state_cases(severities),
        }
    ]
    _promtool_test(tmp_path, rules, tests)


# --- the owner labels as a setting of the mixin ------------------------------------------------


def test_one_list_of_owner_labels() -> None:
    """rules.yml, the chart's default and the Grafana twins all use the mixin's ownerLabels."""
    owner_labels = rules_generator().render()["config"]["ownerLabels"]
    assert owner_labels == ["team"]
    chart_values = yaml.safe_load(
        (HELM_DIR / "elevenlabs-link-monitor" / "values.yaml").read_text(encoding="utf-8")
    )
    assert chart_values["prometheusRule"]["ownerLabels"] == owner_labels
    rules = RULES.read_text(encoding="utf-8")
    assert rules.count("group_left (team)\n") == len(AGENTS)
    grafana = GRAFANA_RULES.read_text(encoding="utf-8")
    assert grafana.count("group_left (team)") == len(AGENTS)
    # N names the agent; a weighted alert's N twice, once per severity (issue 19).
    weighted = 4
    assert grafana.count("agent_name, team)") == len(AGENTS) + weighted


def test_rules_for_other_owner_labels(tmp_path: Path) -> None:
    """--owner-labels team,env --print-rules: rules.yml for a Prometheus without the chart."""
    script = str(MIXIN_DIR / "build.py")
    result = run([sys.executable, script, "--owner-labels", "team,env", "--print-rules"])
    assert result.returncode == 0, output(result)
    printed = yaml.safe_load(result.stdout)
    assert result.stdout.count("group_left (team, env)\n") == len(AGENTS)
    # Otherwise rules.yml as it is.
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    back = yaml.safe_load(
        result.stdout.replace("group_left (team, env)", "group_left (team)").replace(
            "agent_id, team, env)", "agent_id, team)"
        )
    )
    assert back == source

    rules = [dict(r) for g in printed["groups"] for r in g["rules"]]
    for rule in rules:
        rule.pop("annotations", None)
    series = [
        _series("elevenlabs_agent_info", "a_env", "1x30", agent_name="b", team="pay", env="prod"),
        _series("elevenlabs_agent_link_state", "a_env", "1x30", state="missing"),
        _series("elevenlabs_agent_link_state", "a_env", "0x30", state="unknown"),
    ]
    labels = {
        "severity": "critical",
        "job": JOB,
        "workspace": "prod",
        "agent_id": "a_env",
        "team": "pay",
        "env": "prod",
    }
    tests = [
        {
            "name": "two owner labels",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {
                    "eval_time": "20m",
                    "alertname": "ElevenLabsAgentLinkMissing",
                    "exp_alerts": [{"exp_labels": labels}],
                }
            ],
        }
    ]
    _promtool_test(tmp_path, rules, tests)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ("team,job", "'job' is one of the monitor's or the alerts' own"),
        ("team,severity", "'severity' is one of the monitor's or the alerts' own"),
        ("team,team", "'team' is listed twice"),
        ("team,1st", "'1st' is not a Prometheus label name"),
        ("__team", "'__team' is not a Prometheus label name"),
    ],
)
def test_bad_owner_labels_are_refused_in_one_line(labels: str, problem: str) -> None:
    script = str(MIXIN_DIR / "build.py")
    result = run([sys.executable, script, "--owner-labels", labels, "--print-rules"])
    assert result.returncode == 2, output(result)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, output(result)
    assert problem in result.stderr
