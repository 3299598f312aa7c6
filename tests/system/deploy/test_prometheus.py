"""deploy/prometheus: the alert rules, their promtool unit tests and the scrape config."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.system.deploy._helpers import JOB, PROMETHEUS_DIR, output, run
from tests.tooling import require_tool

RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "scrape-config.yml"
DISCOVERY_FAILING = "ElevenLabsLinkMonitorDiscoveryFailing"


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _only(*cases: str) -> str:
    """rules_test.yml with only the cases whose names start with one of `cases`: a control
    needs only the cases it must make fail (the whole file takes promtool about 5 s)."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    tests["tests"] = [t for t in tests["tests"] if t["name"].startswith(cases)]
    assert len(tests["tests"]) >= len(cases), cases
    return yaml.safe_dump(tests, sort_keys=False)


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, output(result)
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout, output(result)


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", RULES_TEST.name], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)
    assert "FAILED" not in result.stdout + result.stderr, output(result)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests catch a rule that pages on a brief API outage or a restart."""
    promtool = require_tool("promtool")
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for rule in data["groups"][0]["rules"]:
        if rule.get("alert") == "ElevenLabsAgentLinkPollingFailing":
            rule["for"] = "5m"
        if rule.get("alert") == "ElevenLabsAgentLinkMissing":
            # Without the fallback to the last known state, a restart resolves it.
            rule["expr"] = (
                "max by (job, workspace, agent_id) "
                '(elevenlabs_agent_link_state{state="missing"} == 1)'
            )
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    cases = _only(
        "polling failures alert only when sustained",
        "a monitor restart neither resolves nor fires anything",
    )
    (tmp_path / "rules_test.yml").write_text(cases, encoding="utf-8")
    result = run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path)
    assert result.returncode != 0, output(result)
    assert "polling failures alert only when sustained" in result.stdout + result.stderr
    assert "a monitor restart neither resolves nor fires anything" in (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize(
    ("wrong", "expr"),
    [
        ("one missed listing pages", "1 * ("),
        ("a workspace that never listed stays silent", None),
    ],
)
def test_promtool_unit_tests_catch_a_wrong_discovery_alert(
    tmp_path: Path, wrong: str, expr: str | None
) -> None:
    promtool = require_tool("promtool")
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (rule,) = [r for r in data["groups"][0]["rules"] if r.get("alert") == DISCOVERY_FAILING]
    original = rule["expr"]
    if expr is not None:
        rule["expr"] = original.replace("3 * (", expr)
    else:
        # Only the age since the last success: no listing ever succeeding goes unseen.
        rule["expr"] = (
            "time() - elevenlabs_link_monitor_discovery_last_success_timestamp_seconds > 1800"
        )
    assert rule["expr"] != original, wrong
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    cases = _only("discovery failing alerts after three missed listings")
    (tmp_path / "rules_test.yml").write_text(cases, encoding="utf-8")
    result = run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path)
    assert result.returncode != 0, output(result)
    assert "discovery failing alerts after three missed listings" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"
    group_names = " ".join(group["name"] for group in tests["tests"])
    assert "restart" in group_names
    assert "polling failures alert only when sustained" in group_names


def test_alerts_carry_for_severity_and_agent_annotations() -> None:
    alerts = _alerts()
    assert len(alerts) >= 9
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"\d+m", rule.get("for", "")), f"{name}: needs a for: in minutes"
        if name in WEIGHTED_ALERTS:
            # The severity is a label of the expression: today's, or info for an idle agent.
            assert "labels" not in rule, name
            severities = re.findall(r'"severity", "(\w+)", "", ""', rule["expr"])
            assert severities[0] in {"warning", "critical"}, name
            assert severities[1:] == ["info"], name
        else:
            assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        if "elevenlabs_agent" in rule["expr"]:
            for key in ("summary", "description"):
                for label in ("workspace", "agent_id"):
                    assert f"$labels.{label}" in annotations[key], f"{name}.{key}: {label}"
                # The name is looked up, never an alert label: a rename must not split it.
                assert "elevenlabs_agent_info{" in annotations[key], f"{name}.{key}"
                assert "| query }}" in annotations[key], f"{name}.{key}"
            assert "agent_name" not in rule["expr"], name
            assert "agent_name" not in rule.get("labels", {}), name
    by_name = {rule["alert"]: rule for rule in alerts}
    # A brief API outage must not page: the polling alert waits for 30 minutes.
    assert by_name["ElevenLabsAgentLinkPollingFailing"]["for"] == "30m"
    # The expiry alerts read the expiry timestamp, not a relative gauge.
    assert "expires_in" not in RULES.read_text(encoding="utf-8")


def test_monitor_alerts_select_the_scrape_job() -> None:
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert [job["job_name"] for job in scrape["scrape_configs"]] == [JOB]
    target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
    assert target.endswith(":9877")
    by_name = {rule["alert"]: rule for rule in _alerts()}
    assert f'up{{job="{JOB}"}}' in by_name["ElevenLabsLinkMonitorDown"]["expr"]
    assert f'absent(up{{job="{JOB}"}})' in by_name["ElevenLabsLinkMonitorAbsent"]["expr"]


def test_promtool_check_config_with_scrape_job_and_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    config = {
        "global": {"scrape_interval": "1m", "evaluation_interval": "1m"},
        "rule_files": [str(RULES)],
        "scrape_configs": scrape["scrape_configs"],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout, output(result)

    # The snippet is itself a valid prometheus.yml.
    result = run([promtool, "check", "config", str(SCRAPE_CONFIG)])
    assert result.returncode == 0, output(result)


def test_a_rename_would_split_an_alert_that_carried_the_name(tmp_path: Path) -> None:
    """The rename case in rules_test.yml catches a rule that joins the name into its labels."""
    promtool = require_tool("promtool")
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for rule in data["groups"][0]["rules"]:
        if rule.get("alert") == "ElevenLabsAgentLinkExpiryCritical":
            rule["expr"] = (
                f"({rule['expr']}) * on (job, workspace, agent_id) group_left (agent_name)"
                " max by (job, workspace, agent_id, agent_name) (elevenlabs_agent_info)"
            )
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    cases = _only("an agent renamed while its link expires keeps one continuous alert")
    (tmp_path / "rules_test.yml").write_text(cases, encoding="utf-8")
    result = run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path)
    assert result.returncode != 0, output(result)
    assert "an agent renamed while its link expires keeps one continuous alert" in (
        result.stdout + result.stderr
    )


# --- per-agent thresholds and owner labels ----------------------------------------------------

THRESHOLDS_CASE = "per-agent thresholds decide who alerts, and the alerts carry the agent's team"
RENAME_RESTART_CASE = (
    "a rename across a restart keeps one alert with its team, and a change of team never breaks "
    "the join"
)
# Every case that reads the owner labels: a wrong join fails one of them.
OWNER_CASES = (
    THRESHOLDS_CASE,
    RENAME_RESTART_CASE,
    "an agent renamed while its link expires",
    "a monitor gone within a minute of its start",
)
OWNER_RULE = "elevenlabs_agent:owner_labels:last_known"
OWNER_JOIN = (
    "* on (job, namespace, workspace, agent_id) group_left (team)\n"
    "elevenlabs_agent:owner_labels:last_known\n"
)
PER_AGENT_ALERTS = {
    "ElevenLabsAgentLinkExpiringSoon",
    "ElevenLabsAgentLinkExpiryCritical",
    "ElevenLabsAgentLinkExpired",
    "ElevenLabsAgentLinkMissing",
    "ElevenLabsAgentNotFound",
    "ElevenLabsAgentLinkPollingFailing",
    "ElevenLabsAgentArchivedLinkLive",
}
# Weighted by use (issue 19): info on an idle agent.
WEIGHTED_ALERTS = {
    "ElevenLabsAgentLinkExpiringSoon",
    "ElevenLabsAgentLinkExpiryCritical",
    "ElevenLabsAgentLinkExpired",
    "ElevenLabsAgentLinkMissing",
}


def _failing_cases(tmp_path: Path, data: dict[str, Any], *cases: str) -> str:
    """promtool's report of `cases` of rules_test.yml on changed rules; the run must fail."""
    promtool = require_tool("promtool")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "rules_test.yml").write_text(_only(*cases), encoding="utf-8")
    result = run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path)
    assert result.returncode != 0, output(result)
    return result.stdout + result.stderr


def test_every_per_agent_alert_joins_the_owner_labels() -> None:
    alerts = {rule["alert"]: rule for rule in _alerts()}
    per_agent = {name for name, rule in alerts.items() if "elevenlabs_agent" in rule["expr"]}
    assert per_agent == PER_AGENT_ALERTS
    for name in per_agent:
        # The whole condition, then the join: the alert's value stays the condition's.
        assert alerts[name]["expr"].rstrip("\n").endswith(OWNER_JOIN.rstrip("\n")), name
    for name in set(alerts) - per_agent:
        assert "group_left" not in alerts[name]["expr"] or "team" not in alerts[name]["expr"]


def test_the_cases_catch_rules_that_ignore_the_agents_thresholds(tmp_path: Path) -> None:
    """The fixed 7d/1d of 0.1 would warn for the 30-day agent too late, and not go critical."""
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    last_known = "elevenlabs_agent:link_expiry_timestamp_seconds:last_known - time()"
    fixed = {
        "ElevenLabsAgentLinkExpiringSoon": f"({last_known} < 7 * 86400 >= 86400)\n",
        "ElevenLabsAgentLinkExpiryCritical": f"({last_known} < 86400 > 0)\n",
    }
    for rule in data["groups"][0]["rules"]:
        if rule.get("alert") in fixed:
            rule["expr"] = fixed[rule["alert"]] + OWNER_JOIN
    report = _failing_cases(tmp_path, data, THRESHOLDS_CASE)
    assert THRESHOLDS_CASE in report
    assert 'agent_id="agent_pay"' in report
    assert 'agent_id="agent_pay_crit"' in report


# promtool stops at a failed evaluation and names the rule and the match group, not the case.
JOIN_FAILS = 'found duplicate series for the match group {agent_id="%s"'


@pytest.mark.parametrize(
    ("wrong", "owner_expr", "report"),
    [
        (
            "the name kept in the owner series: a rename is two series, the join fails",
            "group by (job, workspace, agent_id, agent_name, team) "
            "(elevenlabs_agent_info or last_over_time(elevenlabs_agent_info[15m]))",
            JOIN_FAILS % "agent_r",
        ),
        (
            "no tie-break: two teams in the past 15 minutes, the join fails",
            "group by (job, workspace, agent_id, team) (elevenlabs_agent_info)\n"
            "or on (job, workspace, agent_id)\n"
            "group by (job, workspace, agent_id, team) "
            "(last_over_time(elevenlabs_agent_info[15m]))",
            JOIN_FAILS % "agent_t",
        ),
        (
            "ranked by the 1m subquery alone: a monitor gone within a minute loses the team",
            "group by (job, workspace, agent_id, team) (\n"
            "  topk by (job, workspace, agent_id) (1,\n"
            "    max by (job, workspace, agent_id, team) (timestamp(elevenlabs_agent_info))\n"
            "    or on (job, workspace, agent_id)\n"
            "    max by (job, workspace, agent_id, team) "
            "(max_over_time(timestamp(elevenlabs_agent_info)[15m:1m]))\n"
            "  )\n"
            ")\n"
            "or on (job, workspace, agent_id)\n"
            "group by (job, workspace, agent_id) "
            '(last_over_time(elevenlabs_agent_link_state{state="unknown"}[15m]))',
            "a monitor gone within a minute of its start keeps its agent's team",
        ),
        (
            "the current info only: a restart drops the alerts",
            "group by (job, workspace, agent_id, team) (elevenlabs_agent_info)",
            RENAME_RESTART_CASE,
        ),
        (
            "info series only: an agent without one never alerts",
            "group by (job, workspace, agent_id, team) "
            "(elevenlabs_agent_info or last_over_time(elevenlabs_agent_info[15m]))",
            THRESHOLDS_CASE,
        ),
    ],
)
def test_the_cases_catch_a_wrong_owner_join(
    tmp_path: Path, wrong: str, owner_expr: str, report: str
) -> None:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (rule,) = [r for r in data["groups"][0]["rules"] if r.get("record") == OWNER_RULE]
    rule["expr"] = owner_expr
    assert report in _failing_cases(tmp_path, data, *OWNER_CASES), wrong


def test_the_cases_catch_alerts_without_the_owner(tmp_path: Path) -> None:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for rule in data["groups"][0]["rules"]:
        if rule.get("alert") in PER_AGENT_ALERTS:
            rule["expr"] = rule["expr"].replace(OWNER_JOIN, "")
    report = _failing_cases(tmp_path, data, *OWNER_CASES)
    assert THRESHOLDS_CASE in report
    assert RENAME_RESTART_CASE in report


# --- usage and exposure (issue 19) --------------------------------------------------------------

USE_CASE = "expiry alerts weigh by use, and an archived agent's live link alerts instead"
USE_RESTART_CASE = (
    "across a restart an idle agent's alert stays a ticket and an archived agent stays silent"
)
IDLE_RULE = "elevenlabs_agent:idle:last_known"
ARCHIVED_RULE = "elevenlabs_agent:archived:last_known"
AGENT_KEYS = "job, namespace, workspace, agent_id"


def _unweighted(rule: dict[str, Any]) -> None:
    """Every agent at today's severity: idle ones page too."""
    rule["expr"] = rule["expr"].replace('"severity", "info"', '"severity", "critical"')


def _unknown_hidden(rule: dict[str, Any]) -> None:
    """Today's severity only where known used: unknown use alerts nowhere."""
    rule["expr"] = re.sub(
        rf"unless on \({AGENT_KEYS}\)\n(\s*)\({IDLE_RULE} == 1\)",
        rf"and on ({AGENT_KEYS})\n\1({IDLE_RULE} == 0)",
        rule["expr"],
    )


def _archived_alerting(rule: dict[str, Any]) -> None:
    """Archived agents not held back."""
    rule["expr"] = rule["expr"].replace(f"{ARCHIVED_RULE} == 1", f"{ARCHIVED_RULE} == 2")


def _current_only(rule: dict[str, Any]) -> None:
    """No last-known fallback: the series of the running monitor only."""
    if rule["record"] == IDLE_RULE:
        rule["expr"] = rule["expr"].split(")\nor\n(", 1)[0] + ")"
    else:
        rule["expr"] = rule["expr"].split("\nor\n", 1)[0]


@pytest.mark.parametrize(
    ("wrong", "names", "change", "case"),
    [
        ("idle agents page", WEIGHTED_ALERTS, _unweighted, USE_CASE),
        ("unknown use hides the alert", WEIGHTED_ALERTS, _unknown_hidden, USE_CASE),
        ("archived agents alert", WEIGHTED_ALERTS, _archived_alerting, USE_CASE),
        ("usage forgotten in a restart", {IDLE_RULE}, _current_only, USE_RESTART_CASE),
        ("the archive forgotten in a restart", {ARCHIVED_RULE}, _current_only, USE_RESTART_CASE),
    ],
)
def test_the_cases_catch_rules_that_weigh_use_or_the_archive_wrong(
    tmp_path: Path,
    wrong: str,
    names: set[str],
    change: Callable[[dict[str, Any]], None],
    case: str,
) -> None:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [r for r in data["groups"][0]["rules"] if (r.get("alert") or r.get("record")) in names]
    assert len(rules) == len(names)
    for rule in rules:
        before = rule["expr"]
        change(rule)
        assert rule["expr"] != before, (wrong, rule.get("alert") or rule.get("record"))
    assert case in _failing_cases(tmp_path, data, case), wrong
