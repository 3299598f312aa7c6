"""ElevenLabsAgentLinkMissing: a link missing on every other poll fires (issue 21, finding 1).

The cases themselves are promtool unit tests in deploy/prometheus/rules_test.yml. These tests
show that they catch the old rule (a `for:` that every good poll restarted), and run the same
cases against the Grafana-managed twin, so both alert on a flapping link alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.system.deploy._helpers import DEPLOY, PROMETHEUS_DIR, output, run
from tests.tooling import require_tool

RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
GRAFANA_RULES = DEPLOY / "grafana" / "provisioning" / "alerting" / "elevenlabs-link-monitor.yaml"
ALERT = "ElevenLabsAgentLinkMissing"
FLAPPING = "a flapping missing link fires, a single missing poll does not, a steady one as before"

# The rule before the fix: missing now, or (no known state) in the past 15 minutes.
OLD_EXPR = """\
max by (job, workspace, agent_id) (elevenlabs_agent_link_state{state="missing"} == 1)
or
(
  max by (job, workspace, agent_id) (max_over_time(elevenlabs_agent_link_state{state="missing"}[15m])) == 1
  unless on (job, workspace, agent_id)
  (elevenlabs_agent_link_state{state!="unknown"} == 1)
)
"""


def _missing_cases() -> list[dict[str, Any]]:
    """rules_test.yml's groups that test the alert, with only its cases, annotations dropped."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    groups = []
    for group in tests["tests"]:
        cases = [case for case in group.get("alert_rule_test", []) if case["alertname"] == ALERT]
        if not cases:
            continue
        for case in cases:
            for alert in case["exp_alerts"]:
                alert.pop("exp_annotations", None)
        groups.append({**group, "alert_rule_test": cases, "promql_expr_test": []})
    return groups


def _recording_rules() -> list[dict[str, Any]]:
    """rules.yml's recording rules, which its alerts read (the owner labels' join)."""
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [dict(r) for g in data["groups"] for r in g["rules"] if "record" in r]


def _run_cases(
    tmp_path: Path, expr: str, for_: str, labels: dict[str, str] | None = None
) -> tuple[int, str]:
    """The cases against `expr`; `labels` the rule's static ones (none: the alert is weighted
    by use, its severity a label of the expression, issue 19)."""
    alert: dict[str, Any] = {"alert": ALERT, "expr": expr, "for": for_}
    if labels:
        alert["labels"] = labels
    rules = {"groups": [{"name": "missing", "rules": [*_recording_rules(), alert]}]}
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": _missing_cases()}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = run([require_tool("promtool"), "test", "rules", "rules_test.yml"], cwd=tmp_path)
    return result.returncode, output(result)


def _prometheus_rule() -> dict[str, Any]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (rule,) = [r for g in data["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    return dict(rule)


def test_the_cases_cover_flapping_a_single_miss_and_a_steady_link() -> None:
    names = [group["name"] for group in _missing_cases()]
    assert FLAPPING in names
    series = " ".join(
        s["series"] for g in _missing_cases() if g["name"] == FLAPPING for s in g["input_series"]
    )
    for agent in ("agent_flap", "agent_blip", "agent_steady"):
        assert f'agent_id="{agent}"' in series, agent


def test_the_rule_passes_the_cases(tmp_path: Path) -> None:
    rule = _prometheus_rule()
    assert "labels" not in rule  # the severity comes from the expression
    status, text = _run_cases(tmp_path, rule["expr"], rule["for"])
    assert status == 0, text


def test_the_cases_catch_the_old_rule_that_a_good_poll_restarted(tmp_path: Path) -> None:
    status, text = _run_cases(
        tmp_path, OLD_EXPR, _prometheus_rule()["for"], {"severity": "critical"}
    )
    assert status != 0, text
    assert FLAPPING in text, text
    assert 'agent_id="agent_flap"' in text, text


def test_the_grafana_twin_passes_the_same_cases(tmp_path: Path) -> None:
    """Grafana reduces query A to its last value and alerts above 0, for the same duration."""
    document = yaml.safe_load(GRAFANA_RULES.read_text(encoding="utf-8"))
    (rule,) = [r for g in document["groups"] for r in g["rules"] if r["title"] == ALERT]
    data = {query["refId"]: query for query in rule["data"]}
    threshold = data[rule["condition"]]["model"]["conditions"][0]["evaluator"]
    assert threshold == {"type": "gt", "params": [0.0]}
    assert rule["for"] == _prometheus_rule()["for"]
    status, text = _run_cases(tmp_path, f"({data['A']['model']['expr']}) > 0", rule["for"])
    assert status == 0, text
