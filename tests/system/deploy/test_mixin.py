"""deploy/mixin: the monitoring mixin, rendered by a real Jsonnet (PyPI `jsonnet`), is the one
source of rules.yml, the chart's PrometheusRule and the Grafana-managed rules (issue 18).

- every generated file matches what the mixin renders now;
- the selector, the identity labels and the runbook URL pattern of `_config` reach every
  expression, aggregation and alert;
- every alert's runbook anchor is a heading of docs/runbook.md, by GitHub's anchor rules;
- a revoked key for a workspace of 200 agents pages once, with no per-agent poll alert, while
  expired links, in that workspace and in a healthy one, still fire (promtool);
- the active window and the idle severity of `_config` decide, in promtool, whether an agent
  last called 10 days ago pages (issue 19).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.system.deploy._helpers import JOB, REPO, output, rules_generator, run
from tests.system.grafana.support import GRAFANA, load_module
from tests.tooling import require_tool

RUNBOOK = REPO / "docs" / "runbook.md"
KEY_REJECTED = "ElevenLabsWorkspaceKeyRejected"
POLLING_FAILING = "ElevenLabsAgentLinkPollingFailing"
EXPIRED = "ElevenLabsAgentLinkExpired"
AGENTS_NOT_FOUND = "ElevenLabsWorkspaceAgentsNotFound"
NOT_FOUND = "ElevenLabsAgentNotFound"
CUSTOM: dict[str, Any] = {
    "selector": 'job="links",cluster="eu-1"',
    "identityLabels": ["cluster", "job", "namespace"],
    "runbookURLPattern": "https://runbooks.example.com/elm/%s.html",
    "ownerLabels": ["team", "env"],
}


def _require_module(name: str, package: str) -> None:
    """Skip without the module locally, fail without it in CI (as require_tool)."""
    if importlib.util.find_spec(name) is None:
        message = f"required module {name!r} (PyPI {package}) is not installed (a dev dependency)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def build() -> ModuleType:
    _require_module("_jsonnet", "jsonnet")
    return rules_generator()


@pytest.fixture(scope="module")
def promql() -> ModuleType:
    return load_module("mixin_promql", GRAFANA / "promql.py")


def _rules(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        rule
        for part in ("prometheusRules", "prometheusAlerts")
        for group in rendered[part]["groups"]
        for rule in group["rules"]
    ]


def _expressions(rendered: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the rules', the Grafana twins' queries (A, N and T)."""
    found = [rule["expr"] for rule in _rules(rendered)]
    for twin in rendered["grafanaManagedAlerts"]:
        found += [twin[key] for key in ("expr", "names", "threshold") if twin[key] is not None]
    return found


# --- the generated files -----------------------------------------------------------------


def test_generated_files_match_the_mixin(build: ModuleType) -> None:
    _require_module("grafana_foundation_sdk", "grafana-foundation-sdk")
    files = build.outputs()
    assert build.RULES_PATH in files
    assert build.RULE_TEMPLATE_PATH in files
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} differs from the mixin: run python deploy/mixin/build.py"
        )


def test_the_check_notices_a_change_of_the_mixin(build: ModuleType) -> None:
    """A different _config is a different rules.yml (the test above would then fail)."""
    changed = build.render_rules({"alerts": {KEY_REJECTED: {"for": "25m"}}})
    assert changed != build.render_rules()
    # The alert's own for:, its words, and the window that holds the agents' alerts back.
    back = (
        changed.replace("for: 25m", "for: 10m")
        .replace("for 25 minutes", "for 10 minutes")
        .replace("[25m]", "[10m]")
    )
    assert back == build.render_rules()


def test_rules_yml_says_it_is_generated(build: ModuleType) -> None:
    text = build.RULES_PATH.read_text(encoding="utf-8")
    assert text.startswith("# Alerting and recording rules")
    assert "GENERATED from the monitoring mixin" in text.split("groups:")[0]


def test_the_mixin_has_the_kube_prometheus_fields(build: ModuleType) -> None:
    rendered = build.render()
    assert rendered["config"]["selector"] == f'job="{JOB}"'
    assert rendered["config"]["identityLabels"] == ["job", "namespace"]
    assert all(
        "record" in rule for g in rendered["prometheusRules"]["groups"] for rule in g["rules"]
    )
    assert all(
        "alert" in rule for g in rendered["prometheusAlerts"]["groups"] for rule in g["rules"]
    )
    assert rendered["grafanaDashboards"] == ["elevenlabs-link-monitor.json"]


# --- _config flows into every expression and alert ---------------------------------------------


def test_the_selector_reaches_every_series_read(build: ModuleType, promql: ModuleType) -> None:
    rendered = build.render(CUSTOM)
    selector = "{" + CUSTOM["selector"]
    checked = 0
    for expr in _expressions(rendered):
        for name in promql.metric_names(expr):
            if ":" in name:  # a recorded series, derived from selected ones
                continue
            for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr):
                assert expr[match.end() :].startswith(selector), (name, expr)
                checked += 1
    assert checked > 100
    # The default selector nowhere.
    assert all(JOB not in expr for expr in _expressions(rendered))


def test_the_identity_labels_lead_every_aggregation_and_match(build: ModuleType) -> None:
    rendered = build.render(CUSTOM)
    identity = ", ".join(CUSTOM["identityLabels"])
    clauses = [
        clause
        for expr in _expressions(rendered)
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr)
    ]
    assert len(clauses) > 50
    for clause in clauses:
        assert clause.startswith(identity), clause


def test_the_runbook_pattern_and_identity_reach_every_alert(build: ModuleType) -> None:
    rendered = build.render(CUSTOM)
    alerts = [rule for rule in _rules(rendered) if "alert" in rule]
    twins = {twin["title"]: twin for twin in rendered["grafanaManagedAlerts"]}
    assert set(twins) == {alert["alert"] for alert in alerts}
    for alert in alerts:
        url = f"https://runbooks.example.com/elm/{alert['alert'].lower()}.html"
        assert alert["annotations"]["runbook_url"] == url
        assert twins[alert["alert"]]["runbook_url"] == url
        if "$info" in alert["annotations"]["summary"]:
            # The agent's name is looked up within the alert's own cluster and namespace.
            assert "cluster=%q,job=%q,namespace=%q" in alert["annotations"]["summary"]
            assert (
                "$labels.cluster $labels.job $labels.namespace" in alert["annotations"]["summary"]
            )
    owner = next(
        r for r in _rules(rendered) if r.get("record", "").startswith("elevenlabs_agent:owner")
    )
    assert "group by (cluster, job, namespace, workspace, agent_id, team, env)" in owner["expr"]


# --- runbook anchors ------------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation other than
    hyphens and underscores dropped, spaces as hyphens, a repeated anchor suffixed -1, -2..."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        text = re.sub(r"`|\*\*|\*|\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        anchor = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = counts.get(anchor, 0)
        counts[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def test_github_anchors_follow_githubs_rules() -> None:
    text = "# Run book: alerts\n## ElevenLabsX\n## `code` and **bold**!\n## ElevenLabsX\n"
    assert github_anchors(text) == {
        "run-book-alerts",
        "elevenlabsx",
        "code-and-bold",
        "elevenlabsx-1",
    }


def test_every_runbook_url_resolves_to_a_section(build: ModuleType) -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    base = "https://github.com/elevenlabs-link-monitor/elevenlabs-link-monitor/blob/main/docs/runbook.md#"
    document = yaml.safe_load(build.RULES_PATH.read_text(encoding="utf-8"))
    alerts = [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) == 17
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(base), url
        assert url.removeprefix(base) in anchors, f"docs/runbook.md: no section for {url}"


# --- a revoked key for a workspace of 200 agents ------------------------------------------------


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{key}="{value}"' for key, value in {"job": JOB, **labels}.items())
    return {"series": f"{metric}{{{text}}}", "values": values}


def _revoked_key_case(agents: int) -> dict[str, Any]:
    """Workspace `w`: the key revoked from the start, every poll 401, one agent's link long
    expired. Workspace `h`: healthy, one agent's link expired."""
    series = [
        _series("up", "1x60", instance="mon:9877"),
        _series(
            "elevenlabs_link_monitor_workspace_failing",
            "1x60",
            workspace="w",
            reason="unauthorized",
        ),
        _series("elevenlabs_link_monitor_workspace_agents_failing", f"{agents}x60", workspace="w"),
    ]
    for reason in ("unreachable", "rate_limited", "api_error"):
        series.append(
            _series(
                "elevenlabs_link_monitor_workspace_failing", "0x60", workspace="w", reason=reason
            )
        )
    for reason in ("unauthorized", "unreachable", "rate_limited", "api_error"):
        series.append(
            _series(
                "elevenlabs_link_monitor_workspace_failing", "0x60", workspace="h", reason=reason
            )
        )
    for index in range(1, agents + 1):
        agent = {"instance": "mon:9877", "workspace": "w", "agent_id": f"a{index}"}
        series.append(_series("elevenlabs_agent_link_poll_success", "0x60", **agent))
        state = "expired" if index == 1 else "ok"
        series.append(_series("elevenlabs_agent_link_state", "1x60", **agent, state=state))
        series.append(
            _series(
                "elevenlabs_agent_info", "1x60", **agent, agent_name=f"bot-{index}", team="support"
            )
        )
    # a1's link expired before the key was revoked: the last known expiry keeps it alerting.
    series.append(
        _series(
            "elevenlabs_agent_link_expiry_timestamp_seconds",
            "60x60",
            instance="mon:9877",
            workspace="w",
            agent_id="a1",
        )
    )
    healthy = {"instance": "mon:9877", "workspace": "h", "agent_id": "e1"}
    series += [
        _series("elevenlabs_agent_link_poll_success", "1x60", **healthy),
        _series("elevenlabs_agent_link_state", "1x60", **healthy, state="expired"),
        _series("elevenlabs_agent_link_expiry_timestamp_seconds", "120x60", **healthy),
        _series("elevenlabs_agent_info", "1x60", **healthy, agent_name="sales-bot", team="sales"),
    ]

    def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
        return {"exp_labels": {"severity": severity, "job": JOB, **labels}}

    return {
        "name": f"a revoked key for a workspace of {agents} agents pages once",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": "45m",
                "alertname": KEY_REJECTED,
                "exp_alerts": [alert(KEY_REJECTED, "critical", workspace="w")],
            },
            {"eval_time": "45m", "alertname": POLLING_FAILING, "exp_alerts": []},
            {
                "eval_time": "45m",
                "alertname": EXPIRED,
                "exp_alerts": [
                    alert(EXPIRED, "critical", workspace="h", agent_id="e1", team="sales"),
                    alert(EXPIRED, "critical", workspace="w", agent_id="a1", team="support"),
                ],
            },
        ],
        "promql_expr_test": [
            {
                "expr": 'count(ALERTS{alertstate="firing"}) by (alertname)',
                "eval_time": "45m",
                "exp_samples": [
                    {"labels": f'{{alertname="{KEY_REJECTED}"}}', "value": 1},
                    {"labels": f'{{alertname="{EXPIRED}"}}', "value": 2},
                ],
            }
        ],
    }


def _run_case(
    tmp_path: Path, groups: list[dict[str, Any]], case: dict[str, Any]
) -> tuple[int, str]:
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # the labels and the count are the point here
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    result = run([require_tool("promtool"), "test", "rules", "test.yml"], cwd=tmp_path)
    return result.returncode, output(result)


def _committed_groups() -> list[dict[str, Any]]:
    document = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "rules.yml").read_text(encoding="utf-8")
    )
    groups: list[dict[str, Any]] = document["groups"]
    return groups


def _other_workspaces_key_case(agents: int) -> dict[str, Any]:
    """Workspace `w`: a key of another workspace from the start, so every agent answers 404."""
    series = [_series("up", "1x40", instance="mon:9877")]
    for reason in ("unauthorized", "unreachable", "rate_limited", "api_error", "agents_not_found"):
        value = "1x40" if reason == "agents_not_found" else "0x40"
        series.append(
            _series(
                "elevenlabs_link_monitor_workspace_failing", value, workspace="w", reason=reason
            )
        )
    for index in range(1, agents + 1):
        agent = {"instance": "mon:9877", "workspace": "w", "agent_id": f"a{index}"}
        series.append(_series("elevenlabs_agent_link_poll_success", "0x40", **agent))
        series.append(_series("elevenlabs_agent_link_state", "1x40", **agent, state="not_found"))
        series.append(_series("elevenlabs_agent_info", "1x40", **agent, agent_name=f"bot-{index}"))
    return {
        "name": f"a key of another workspace for {agents} agents pages once",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": "30m",
                "alertname": AGENTS_NOT_FOUND,
                "exp_alerts": [
                    {"exp_labels": {"severity": "critical", "job": JOB, "workspace": "w"}}
                ],
            },
            {"eval_time": "30m", "alertname": NOT_FOUND, "exp_alerts": []},
        ],
    }


# The revoked key holds back the poll-failure alerts (its workspace_failing lines, or-ed);
# another workspace's key the not-found alerts.
POLL_HOLD_BACK = (
    r"\n\s*unless on \(job, namespace, workspace\)\n\s*\(\n"
    r"(?:[^\n]*workspace_failing[^\n]*\n|\s*or on [^\n]*\n)+\s*\)"
)
NOT_FOUND_HOLD_BACK = (
    r"\n\s*unless on \(job, namespace, workspace\)\n[^\n]*agents_not_found[^\n]*\n"
)
WHOLE_WORKSPACE_CASES = [
    pytest.param(_revoked_key_case, POLLING_FAILING, POLL_HOLD_BACK, id="revoked-key"),
    pytest.param(_other_workspaces_key_case, NOT_FOUND, NOT_FOUND_HOLD_BACK, id="other-key"),
]


@pytest.mark.parametrize(("case", "alert", "hold_back"), WHOLE_WORKSPACE_CASES)
def test_a_workspace_failing_as_a_whole_for_200_agents_pages_once(
    tmp_path: Path, case: Callable[[int], dict[str, Any]], alert: str, hold_back: str
) -> None:
    status, text = _run_case(tmp_path, _committed_groups(), case(200))
    assert status == 0, text


@pytest.mark.parametrize(("case", "alert", "hold_back"), WHOLE_WORKSPACE_CASES)
def test_the_case_catches_an_alert_per_agent(
    tmp_path: Path, case: Callable[[int], dict[str, Any]], alert: str, hold_back: str
) -> None:
    """The control: without the workspace's hold-back in the rule, 200 agent alerts fire."""
    groups = copy.deepcopy(_committed_groups())
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == alert]
    held_back = re.search(hold_back, rule["expr"])
    assert held_back is not None, rule["expr"]
    rule["expr"] = rule["expr"].replace(held_back.group(0), "\n")
    status, text = _run_case(tmp_path, groups, case(200))
    assert status != 0, text
    assert 'agent_id="a200"' in text, text


# --- the active window (issue 19) ---------------------------------------------------------------

IDLE_RULE = "elevenlabs_agent:idle:last_known"
EXPIRING_SOON = "ElevenLabsAgentLinkExpiringSoon"


def _last_called_10_days_ago_case(severity: str) -> dict[str, Any]:
    """An agent last called 10 days before the start, its link 3 days from expiry."""
    agent = {"instance": "mon:9877", "workspace": "w", "agent_id": "a1"}
    return {
        "name": f"an agent last called 10 days ago alerts at {severity}",
        "interval": "1m",
        "input_series": [
            _series("elevenlabs_agent_link_expiry_timestamp_seconds", "259200x30", **agent),
            _series("elevenlabs_agent_link_state", "1x30", **agent, state="warning"),
            _series("elevenlabs_agent_last_call_timestamp_seconds", "-864000x30", **agent),
            _series("elevenlabs_agent_never_called", "0x30", **agent),
            _series("elevenlabs_agent_info", "1x30", **agent, agent_name="bot"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": EXPIRING_SOON,
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": severity,
                            "job": JOB,
                            "workspace": "w",
                            "agent_id": "a1",
                        }
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("config", "seconds", "severity"),
    [
        ({}, 7 * 86400, "info"),
        ({"activeWindow": "14d"}, 14 * 86400, "warning"),
        ({"activeWindow": "2w"}, 14 * 86400, "warning"),
        ({"activeWindow": "9d", "idleSeverity": "ticket"}, 9 * 86400, "ticket"),
    ],
)
def test_the_active_window_of_config_decides_who_pages(
    build: ModuleType, tmp_path: Path, config: dict[str, Any], seconds: int, severity: str
) -> None:
    rendered = build.render(config)
    (idle,) = [r for r in _rules(rendered) if r.get("record") == IDLE_RULE]
    assert re.findall(r"> bool (\d+)", idle["expr"]) == [str(seconds)] * 2
    # The Grafana twins inline the same verdict.
    (twin,) = [t for t in rendered["grafanaManagedAlerts"] if t["title"] == EXPIRING_SOON]
    assert twin["severity"] is None
    # Both of its branches (today's severity, and idleSeverity).
    assert re.findall(r"> bool (\d+)", twin["expr"]) == [str(seconds)] * 4
    status, text = _run_case(
        tmp_path, build.rule_groups(rendered), _last_called_10_days_ago_case(severity)
    )
    assert status == 0, text


def test_an_active_window_of_no_known_unit_is_refused(build: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="digits with one unit"):
        build.render({"activeWindow": "7days"})
