"""The generated Grafana dashboard: committed output, variables and panels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.system.grafana.support import ALERT_RULES, DASHBOARD

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [panel for panel in found if panel["type"] != "row"]


def exprs(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel.get("targets", [])]


def find_panels(dashboard: dict[str, Any], *fragments: str) -> list[dict[str, Any]]:
    """Panels with a query that contains every fragment."""
    return [
        panel
        for panel in panels(dashboard)
        if any(all(fragment in expr for fragment in fragments) for expr in exprs(panel))
    ]


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    assert len(matches) == 1, f"expected one variable {name!r}, found {len(matches)}"
    found: dict[str, Any] = matches[0]
    return found


def units(panel: dict[str, Any]) -> set[str]:
    """Units set on the panel or on any field override."""
    config = panel.get("fieldConfig", {})
    found = {config.get("defaults", {}).get("unit")}
    for override in config.get("overrides", []):
        found |= {p.get("value") for p in override.get("properties", []) if p.get("id") == "unit"}
    return {unit for unit in found if unit}


# --- the committed files are the generator's output --------------------------


def test_committed_dashboard_is_the_generators_output(generator: ModuleType) -> None:
    generated: str = generator.render_dashboard()
    assert DASHBOARD.read_text(encoding="utf-8") == generated, (
        "deploy/grafana/dashboards/elevenlabs-link-monitor.json is stale: "
        "run python deploy/grafana/generate_dashboard.py"
    )


def test_committed_alert_rules_are_the_generators_output(generator: ModuleType) -> None:
    generated: str = generator.render_alert_rules()
    assert ALERT_RULES.read_text(encoding="utf-8") == generated, (
        "deploy/grafana/provisioning/alerting/elevenlabs-link-monitor.yaml is stale: "
        "run python deploy/grafana/generate_dashboard.py"
    )


def test_generator_output_is_deterministic(generator: ModuleType) -> None:
    assert generator.render_dashboard() == generator.render_dashboard()
    assert generator.render_alert_rules() == generator.render_alert_rules()


def test_check_mode_fails_on_a_stale_file(
    generator: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_copy = tmp_path / "dashboard.json"
    rules_copy = tmp_path / "rules.yaml"
    shutil.copy(DASHBOARD, dashboard_copy)
    shutil.copy(ALERT_RULES, rules_copy)
    monkeypatch.setattr(generator, "DASHBOARD_PATH", dashboard_copy)
    monkeypatch.setattr(generator, "ALERTS_PATH", rules_copy)
    assert generator.main(["--check"]) == 0

    dashboard_copy.write_text(
        dashboard_copy.read_text(encoding="utf-8").replace("Agents by state", "Agents"),
        encoding="utf-8",
    )
    assert generator.main(["--check"]) == 1
    assert dashboard_copy.read_text(encoding="utf-8") != generator.render_dashboard(), (
        "--check must not rewrite the file"
    )

    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_dashboard_json_is_sorted_with_two_space_indent() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert text == canonical


# --- dashboard contents -------------------------------------------------------


def test_stable_uid_and_title(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "elevenlabs-link-monitor"
    assert dashboard["title"]


def test_datasource_variable(dashboard: dict[str, Any]) -> None:
    datasource = variable(dashboard, "datasource")
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


@pytest.mark.parametrize(("name", "label"), [("workspace", "workspace"), ("agent", "agent_id")])
def test_workspace_and_agent_variables(dashboard: dict[str, Any], name: str, label: str) -> None:
    var = variable(dashboard, name)
    assert var["type"] == "query"
    assert var["datasource"] == DATASOURCE_REF
    assert var["query"].startswith("label_values(")
    assert var["query"].endswith(f", {label})")
    assert var["multi"] is True
    assert var["includeAll"] is True
    assert var["allValue"] == ".*", "All must be a regex that matches every value"


def test_agent_variable_follows_the_workspace(dashboard: dict[str, Any]) -> None:
    assert 'workspace=~"$workspace"' in variable(dashboard, "agent")["query"]


def test_every_panel_queries_the_chosen_datasource(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel.get("datasource") == DATASOURCE_REF, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == DATASOURCE_REF, panel["title"]


def test_panel_ids_and_ref_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for panel in panels(dashboard):
        ref_ids = [target["refId"] for target in panel.get("targets", [])]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(ref_ids), panel["title"]


def test_panels_fit_the_grid(dashboard: dict[str, Any]) -> None:
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0


def test_per_agent_queries_honour_workspace_and_agent(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        for expr in exprs(panel):
            if "elevenlabs_agent_link_" in expr:
                assert 'workspace=~"$workspace"' in expr, expr
                assert 'agent_id=~"$agent"' in expr, expr


def test_agents_by_state(dashboard: dict[str, Any]) -> None:
    found = find_panels(dashboard, "by (state)", "elevenlabs_agent_link_state")
    assert any(panel["type"] in ("stat", "bargauge", "barchart") for panel in found)


def test_time_left_table_sorted_soonest_first(dashboard: dict[str, Any]) -> None:
    tables = [
        panel
        for panel in find_panels(
            dashboard, "elevenlabs_agent_link_expiry_timestamp_seconds", "- time()"
        )
        if panel["type"] == "table"
    ]
    assert tables, "no table of time left per agent"
    table = tables[0]
    assert units(table) & {"s", "dtdurations", "dtdurationms"}, "time left needs a duration unit"
    sort_by = table["options"]["sortBy"]
    assert sort_by[0]["desc"] is False, "soonest first is ascending"
    assert any(expr.startswith("sort(") for expr in exprs(table))


def test_missing_links(dashboard: dict[str, Any]) -> None:
    assert find_panels(dashboard, "elevenlabs_agent_link_token_missing")


def test_poll_success_and_errors_by_reason(dashboard: dict[str, Any]) -> None:
    assert find_panels(dashboard, "elevenlabs_agent_link_poll_success")
    assert find_panels(dashboard, "rate(elevenlabs_agent_link_poll_errors_total", "by (reason)")


def test_poll_latency_quantiles(dashboard: dict[str, Any]) -> None:
    found = find_panels(
        dashboard, "histogram_quantile(", "elevenlabs_link_monitor_poll_duration_seconds_bucket"
    )
    assert found
    assert all("by (le)" in expr for expr in exprs(found[0]))


def test_monitor_health(dashboard: dict[str, Any]) -> None:
    assert find_panels(dashboard, 'up{job="$job"}')
    assert variable(dashboard, "job")["current"]["value"] == "elevenlabs-link-monitor"
    version = find_panels(dashboard, "elevenlabs_link_monitor_build_info")
    assert version
    assert "{{version}}" in [t.get("legendFormat") for t in version[0]["targets"]]
    assert find_panels(dashboard, "time() - elevenlabs_link_monitor_last_cycle_timestamp_seconds")
    assert find_panels(dashboard, "elevenlabs_link_monitor_config_last_reload_successful")


def test_panels_naming_agents_join_the_info_series(dashboard: dict[str, Any]) -> None:
    """Names come from elevenlabs_agent_info, joined on the agent's identity."""
    join = "* on (workspace, agent_id) group_left (agent_name)"
    naming = [
        (panel, expr)
        for panel in panels(dashboard)
        for expr in exprs(panel)
        if "agent_name" in expr or "agent_name" in json.dumps(panel.get("targets", []))
    ]
    assert len(naming) >= 5
    for panel, expr in naming:
        assert join in expr, (panel["title"], expr)
        assert "elevenlabs_agent_info{" in expr, (panel["title"], expr)
