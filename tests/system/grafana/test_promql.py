"""deploy/grafana/promql.py: every expression of the dashboard and the alert rules, as runnable."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.system.grafana.support import ALERT_ONLY_METRICS, ALERT_RULES, ALLOWED_METRICS, DASHBOARD

# The series the dashboard must show (the whole contract, bar the optional relative gauge).
EXPECTED_IN_DASHBOARD = ALLOWED_METRICS - {
    "elevenlabs_agent_link_expires_in_seconds",
    # The alerts compare with it; the dashboard colours time left by the default thresholds.
    "elevenlabs_agent_link_threshold_seconds",
    "elevenlabs_link_monitor_poll_duration_seconds_sum",
    "elevenlabs_link_monitor_poll_duration_seconds_count",
}


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    for char in expr:
        if char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_string


@pytest.fixture(scope="module")
def dashboard_exprs(promql: ModuleType) -> list[str]:
    found: list[str] = promql.dashboard_expressions(DASHBOARD)
    return found


@pytest.fixture(scope="module")
def alert_exprs(promql: ModuleType) -> list[str]:
    found: list[str] = promql.alert_rule_expressions(ALERT_RULES)
    return found


def test_expressions_found(dashboard_exprs: list[str], alert_exprs: list[str]) -> None:
    assert len(dashboard_exprs) >= 15
    # One Prometheus query per alert rule (17), the agent name query (N) of the seven per-agent
    # ones and the threshold query (T) of the two expiry alerts.
    assert len(alert_exprs) == 26


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_expressions_are_complete(
    source: str, dashboard_exprs: list[str], alert_exprs: list[str]
) -> None:
    for expr in dashboard_exprs if source == "dashboard" else alert_exprs:
        assert expr.strip(), "empty expression"
        assert "$" not in expr, f"template variable left in {expr!r}"
        assert "[[" not in expr, f"template variable left in {expr!r}"
        assert balanced(expr), f"unbalanced brackets in {expr!r}"


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_only_contract_metrics(
    promql: ModuleType, source: str, dashboard_exprs: list[str], alert_exprs: list[str]
) -> None:
    allowed = ALLOWED_METRICS if source == "dashboard" else ALLOWED_METRICS | ALERT_ONLY_METRICS
    for expr in dashboard_exprs if source == "dashboard" else alert_exprs:
        names: set[str] = promql.metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= allowed, f"{sorted(names - allowed)} not in the contract: {expr!r}"


def test_dashboard_covers_the_contract(promql: ModuleType, dashboard_exprs: list[str]) -> None:
    used = set().union(*(promql.metric_names(expr) for expr in dashboard_exprs))
    assert used >= EXPECTED_IN_DASHBOARD, sorted(EXPECTED_IN_DASHBOARD - used)


def test_variables_are_substituted_for_prometheus(dashboard_exprs: list[str]) -> None:
    assert any('workspace=~".*"' in expr and 'agent_id=~".*"' in expr for expr in dashboard_exprs)
    assert any("[5m]" in expr for expr in dashboard_exprs)
    assert 'up{job="elevenlabs-link-monitor"}' in dashboard_exprs


def test_unknown_variable_is_an_error(promql: ModuleType, tmp_path: Path) -> None:
    board = {
        "templating": {"list": []},
        "panels": [{"type": "stat", "targets": [{"refId": "A", "expr": 'up{job="$nope"}'}]}],
    }
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board), encoding="utf-8")
    with pytest.raises(ValueError, match="nope"):
        promql.dashboard_expressions(path)


def test_collapsed_rows_and_variable_forms(promql: ModuleType, tmp_path: Path) -> None:
    board = {
        "templating": {
            "list": [
                {
                    "name": "ws",
                    "type": "query",
                    "includeAll": True,
                    "allValue": ".+",
                    "query": "label_values(x, ws)",
                },
                {"name": "one", "type": "custom", "current": {"value": "a"}},
            ]
        },
        "panels": [
            {
                "type": "row",
                "panels": [
                    {
                        "type": "timeseries",
                        "targets": [
                            {"expr": 'rate(m{a=~"${ws:regex}", b="[[one]]"}[$__rate_interval])'}
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board), encoding="utf-8")
    assert promql.dashboard_expressions(path) == ["x", 'rate(m{a=~".+", b="a"}[5m])']


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('rate(foo_total{a="b}"}[5m] offset 1h)', {"foo_total"}),
        (
            "sum by (le) (rate(h_bucket[5m])) / on (x) group_left (y) bar:baz",
            {"h_bucket", "bar:baz"},
        ),
        ("count(up == 1) or vector(0) * 1e3", {"up"}),
        ("elevenlabs_agent_link_sate", {"elevenlabs_agent_link_sate"}),
    ],
)
def test_metric_names(promql: ModuleType, expr: str, names: set[str]) -> None:
    assert promql.metric_names(expr) == names
