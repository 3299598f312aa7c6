#!/usr/bin/env python3
"""Generate the Grafana dashboard and the Grafana-managed alert rules of elevenlabs-link-monitor.

Both files are built with Grafana's own builders (PyPI ``grafana-foundation-sdk``)
and committed; never edit them by hand:

- ``deploy/grafana/dashboards/elevenlabs-link-monitor.json``: the dashboard,
  loaded by the file provider in ``provisioning/dashboards/dashboards.yaml``.
- ``deploy/grafana/provisioning/alerting/elevenlabs-link-monitor.yaml``: Grafana
  alert rules (file-provisioning format) equivalent to the Prometheus alerts in
  ``deploy/prometheus/rules.yml``, for setups that alert from Grafana rather
  than from Prometheus + Alertmanager. Both come from the monitoring mixin
  (``deploy/mixin/``): this script reads its alerts' Grafana twins.

Usage, from the repository root::

    python deploy/grafana/generate_dashboard.py          # (re)write both files
    python deploy/grafana/generate_dashboard.py --check  # exit 1 if a committed file is stale

The output is deterministic (stable uids, sorted keys, two-space indent, one
trailing newline), so a change to a panel or a rule is a reviewable diff and
``--check`` in CI catches a generator change without a regenerated file.

The SDK is published with one PyPI release per Grafana version, told apart by a
version epoch; this file targets Grafana 11.6 and needs exactly
``grafana-foundation-sdk==1769699379!11.6.0`` (a plain ``pip install`` picks the
highest epoch, which is the 10.1 build). Other SDK builds may serialise
differently, and ``--check`` would then report a stale file.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import string
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from grafana_foundation_sdk.builders import alerting as alert_builders
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import expr as expr_builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom_model
from grafana_foundation_sdk.models.alerting import Query as AlertQuery
from grafana_foundation_sdk.models.alerting import RelativeTimeRange

HERE = Path(__file__).resolve().parent
MIXIN_BUILD_PATH = HERE.parent / "mixin" / "build.py"
DASHBOARD_PATH = HERE / "dashboards" / "elevenlabs-link-monitor.json"
ALERTS_PATH = HERE / "provisioning" / "alerting" / "elevenlabs-link-monitor.yaml"

DASHBOARD_UID = "elevenlabs-link-monitor"
# The job name of the scrape config (deploy/compose/prometheus.yml,
# deploy/prometheus/, the Kubernetes ServiceMonitor).
JOB = "elevenlabs-link-monitor"
# The uid given to the Prometheus data source in
# provisioning/datasources/prometheus.yaml; alert rules cannot use a dashboard
# variable, so they name it. Change both together.
ALERT_DATASOURCE_UID = "prometheus"
ALERT_FOLDER = "ElevenLabs"
ALERT_GROUP = "elevenlabs-link-monitor"

DAY = 86400
WARNING_SECONDS = 7 * DAY  # the monitor's default thresholds.warning
CRITICAL_SECONDS = 1 * DAY  # the monitor's default thresholds.critical


STATES = ("ok", "warning", "critical", "expired", "missing", "not_found", "unknown")
STATE_COLORS = {
    "ok": "green",
    "warning": "yellow",
    "critical": "orange",
    "expired": "red",
    "missing": "purple",
    "not_found": "dark-red",
    "unknown": "text",
}
POLL_ERROR_REASONS = (
    "timeout",
    "connection",
    "unauthorized",
    "not_found",
    "rate_limited",
    "server_error",
    "client_error",
    "invalid_response",
)

DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Per-agent series, filtered by the dashboard's workspace and agent variables.
AGENT_FILTER = 'workspace=~"$workspace", agent_id=~"$agent"'
AGENT_LEGEND = "{{workspace}} / {{agent_name}} ({{agent_id}})"
# The agent's name is on elevenlabs_agent_info alone (it can change; the series must not):
# panels join it in. `max by` makes one name per agent even with several replicas.
AGENT_NAMES = f"max by (workspace, agent_id, agent_name) (elevenlabs_agent_info{{{AGENT_FILTER}}})"


def _named(expr: str) -> str:
    """Per-agent series with the agent's current name joined in as a label."""
    return f"({expr}) * on (workspace, agent_id) group_left (agent_name) {AGENT_NAMES}"


# Columns a table of per-agent series does not need.
HIDDEN_COLUMNS = {"Time": True, "__name__": True, "instance": True, "job": True}
AGENT_COLUMN_NAMES = {"workspace": "Workspace", "agent_name": "Agent", "agent_id": "Agent id"}
AGENT_COLUMN_ORDER = {"workspace": 0, "agent_name": 1, "agent_id": 2}


# ---------------------------------------------------------------------------
# Dashboard


class _Ids:
    """Sequential panel ids, so the JSON does not depend on build order elsewhere."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next


def _query(
    expr: str,
    ref_id: str = "A",
    legend: str | None = None,
    *,
    instant: bool = False,
    table_format: bool = False,
) -> prometheus.Dataquery:
    query = (
        prometheus.Dataquery()
        .expr(expr)
        .ref_id(ref_id)
        .datasource(DS)
        .editor_mode(prom_model.QueryEditorMode.CODE)
    )
    if legend is not None:
        query = query.legend_format(legend)
    query = query.instant() if instant else query.range()
    if table_format:
        query = query.format(prom_model.PromQueryFormat.TABLE)
    return query


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _value_map(mapping: dict[str, tuple[str, str]]) -> model.ValueMap:
    return model.ValueMap(
        options={
            key: model.ValueMappingResult(text=text, color=color, index=index)
            for index, (key, (text, color)) in enumerate(mapping.items())
        }
    )


def _organize(
    rename: dict[str, str], order: dict[str, int], exclude: dict[str, bool]
) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(
        id_val="organize",
        options={"excludeByName": exclude, "indexByName": order, "renameByName": rename},
    )


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _legend_below() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )


def _ascending(column: str) -> common_builders.TableSortByFieldState:
    return common_builders.TableSortByFieldState().display_name(column).desc(False)


def _color_background_cells() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})


_Panel = TypeVar("_Panel", stat.Panel, table.Panel, timeseries.Panel)


def _panel(
    panel: _Panel,
    ids: _Ids,
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    span: int,
    height: int,
) -> _Panel:
    panel.id(ids()).title(title).description(description).datasource(DS)
    for target in targets:
        panel.with_target(target)
    return panel.span(span).height(height)


def _stat(
    ids: _Ids,
    title: str,
    description: str,
    expr: str,
    *,
    legend: str | None = None,
    span: int,
    height: int = 5,
) -> stat.Panel:
    """A big number without a sparkline: the value now, not its history."""
    query = _query(expr, legend=legend, instant=True)
    panel = _panel(stat.Panel(), ids, title, description, query, span=span, height=height)
    return panel.reduce_options(_last_value()).graph_mode(common.BigValueGraphMode.NONE)


def _trouble_count_stat(
    ids: _Ids, title: str, description: str, expr: str, *, color: str
) -> stat.Panel:
    """A count of agents that need attention: green at zero, ``color`` from the first one."""
    return (
        _stat(ids, title, description, expr, span=4)
        .thresholds(_thresholds((None, "green"), (1, color)))
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )


def _red_green_stat(
    ids: _Ids, title: str, description: str, expr: str, *, red: str, green: str
) -> stat.Panel:
    """An instance's 0/1 health series, one tile per instance, named rather than numbered."""
    return (
        _stat(ids, title, description, expr, legend="{{instance}}", span=6)
        .mappings([_value_map({"0": (red, "red"), "1": (green, "green")})])
        .thresholds(_thresholds((None, "red"), (1, "green")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )


def _table(
    ids: _Ids, title: str, description: str, *exprs: str, span: int, height: int
) -> table.Panel:
    """A table of the current per-agent series; several queries get ref ids A, B, ..."""
    queries = [
        _query(expr, ref_id=ref_id, instant=True, table_format=True)
        for ref_id, expr in zip(string.ascii_uppercase, exprs, strict=False)
    ]
    return _panel(table.Panel(), ids, title, description, *queries, span=span, height=height)


def _timeseries(
    ids: _Ids,
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    span: int,
    legend: common_builders.VizLegendOptions | None = None,
) -> timeseries.Panel:
    panel = _panel(timeseries.Panel(), ids, title, description, *targets, span=span, height=8)
    return panel.unit(unit).legend(_legend_below() if legend is None else legend)


def _overview_panels(ids: _Ids) -> list[Any]:
    agents = (
        _stat(
            ids,
            "Agents watched",
            "elevenlabs_link_monitor_agents, summed over the monitor's instances (shards).",
            "sum(elevenlabs_link_monitor_agents)",
            span=4,
        )
        .thresholds(_thresholds((None, "blue")))
        .color_mode(common.BigValueColorMode.VALUE)
    )
    by_state = (
        _stat(
            ids,
            "Agents by state",
            "How many agents are in each link state (see the state table in docs/metrics.md).",
            f"sum by (state) (elevenlabs_agent_link_state{{{AGENT_FILTER}}})",
            legend="{{state}}",
            span=12,
        )
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .thresholds(_thresholds((None, "text")))
    )
    for state in STATES:
        by_state = by_state.override_by_name(
            state,
            [
                model.DynamicConfigValue(
                    id_val="color", value={"fixedColor": STATE_COLORS[state], "mode": "fixed"}
                )
            ],
        )
    missing = _trouble_count_stat(
        ids,
        "Missing links",
        "Agents whose last successful poll said token: null: they have no shareable link.",
        f"sum(elevenlabs_agent_link_token_missing{{{AGENT_FILTER}}})",
        color="red",
    )
    failing = _trouble_count_stat(
        ids,
        "Agents failing to poll",
        "Agents whose last poll did not get a valid answer.",
        f"count(elevenlabs_agent_link_poll_success{{{AGENT_FILTER}}} == 0) or vector(0)",
        color="orange",
    )
    return [agents, by_state, missing, failing]


def _expiry_panels(ids: _Ids) -> list[Any]:
    time_left = (
        _table(
            ids,
            "Time left per agent (soonest first)",
            "Seconds until each agent's link token expires, soonest first; negative once expired. "
            "Agents without an expiry (no token, or a token that never expires) are not listed.",
            f"sort({_named(f'elevenlabs_agent_link_expiry_timestamp_seconds{{{AGENT_FILTER}}} - time()')})",
            _named(f"elevenlabs_agent_link_expiry_timestamp_seconds{{{AGENT_FILTER}}} * 1000"),
            span=14,
            height=10,
        )
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            _organize(
                rename={**AGENT_COLUMN_NAMES, "Value #A": "Time left", "Value #B": "Expires at"},
                order={**AGENT_COLUMN_ORDER, "Value #A": 3, "Value #B": 4},
                exclude=HIDDEN_COLUMNS,
            )
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="sortBy",
                options={"fields": {}, "sort": [{"desc": False, "field": "Time left"}]},
            )
        )
        .sort_by([_ascending("Time left")])
        .override_by_name(
            "Time left",
            [
                model.DynamicConfigValue(id_val="unit", value="s"),
                _color_background_cells(),
                model.DynamicConfigValue(
                    id_val="thresholds",
                    value={
                        "mode": "absolute",
                        "steps": [
                            {"color": "red", "value": None},
                            {"color": "orange", "value": 0},
                            {"color": "yellow", "value": CRITICAL_SECONDS},
                            {"color": "green", "value": WARNING_SECONDS},
                        ],
                    },
                ),
            ],
        )
        .override_by_name(
            "Expires at", [model.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")]
        )
    )
    state_rows = (
        _table(
            ids,
            "State per agent",
            "Each agent's current link state.",
            _named(f"elevenlabs_agent_link_state{{{AGENT_FILTER}}} == 1"),
            span=10,
            height=10,
        )
        .with_transformation(
            _organize(
                rename={**AGENT_COLUMN_NAMES, "state": "State"},
                order={**AGENT_COLUMN_ORDER, "state": 3},
                exclude={**HIDDEN_COLUMNS, "Value": True},
            )
        )
        .sort_by([_ascending("State")])
        .override_by_name(
            "State",
            [
                _color_background_cells(),
                model.DynamicConfigValue(
                    id_val="mappings",
                    value=[_value_map({state: (state, STATE_COLORS[state]) for state in STATES})],
                ),
            ],
        )
    )
    missing_rows = (
        _table(
            ids,
            "Agents without a shareable link (missing)",
            "The API answered token: null for these agents. "
            "Create a link in the ElevenLabs dashboard.",
            _named(f"elevenlabs_agent_link_token_missing{{{AGENT_FILTER}}} == 1"),
            span=10,
            height=8,
        )
        .with_transformation(
            _organize(
                rename=AGENT_COLUMN_NAMES,
                order=AGENT_COLUMN_ORDER,
                exclude={**HIDDEN_COLUMNS, "Value": True},
            )
        )
        .no_value("No agent is missing its link")
    )
    time_left_graph = (
        _timeseries(
            ids,
            "Time left over time",
            "Seconds until each link expires; a jump up is a rotated or renewed token.",
            _query(
                _named(
                    f"elevenlabs_agent_link_expiry_timestamp_seconds{{{AGENT_FILTER}}} - time()"
                ),
                legend=AGENT_LEGEND,
            ),
            unit="s",
            span=14,
        )
        .thresholds(
            _thresholds(
                (None, "red"),
                (0, "orange"),
                (CRITICAL_SECONDS, "yellow"),
                (WARNING_SECONDS, "green"),
            )
        )
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    )
    return [time_left, state_rows, missing_rows, time_left_graph]


def _polling_panels(ids: _Ids) -> list[Any]:
    success = (
        _timeseries(
            ids,
            "Poll success",
            "Share of the selected agents whose last poll got a valid answer.",
            _query(
                f"avg(elevenlabs_agent_link_poll_success{{{AGENT_FILTER}}})", legend="succeeding"
            ),
            unit="percentunit",
            span=8,
            legend=common_builders.VizLegendOptions().show_legend(False),
        )
        .min(0)
        .max(1)
    )
    errors = _timeseries(
        ids,
        "Poll errors by reason",
        "Failed polls per second, by reason: " + ", ".join(POLL_ERROR_REASONS) + ".",
        _query(
            "sum by (reason) (rate(elevenlabs_agent_link_poll_errors_total"
            f"{{{AGENT_FILTER}}}[$__rate_interval]))",
            legend="{{reason}}",
        ),
        unit="reqps",
        span=8,
    ).min(0)
    latency = _timeseries(
        ids,
        "Poll latency",
        "Quantiles of one API request's duration (all agents, all instances).",
        *(
            _query(
                f"histogram_quantile({q}, sum by (le) "
                "(rate(elevenlabs_link_monitor_poll_duration_seconds_bucket[$__rate_interval])))",
                ref_id=ref_id,
                legend=f"p{int(q * 100)}",
            )
            for ref_id, q in (("A", 0.5), ("B", 0.9), ("C", 0.99))
        ),
        unit="s",
        span=8,
    ).min(0)
    last_success = _timeseries(
        ids,
        "Time since last successful poll",
        "Age of each agent's last valid answer from the API.",
        _query(
            _named(
                f"time() - elevenlabs_agent_link_last_success_timestamp_seconds{{{AGENT_FILTER}}}"
            ),
            legend=AGENT_LEGEND,
        ),
        unit="s",
        span=16,
    ).min(0)
    rotations = (
        _stat(
            ids,
            "Token rotations in range",
            "Times a token or its expiry changed between successful polls, "
            "over the dashboard's range.",
            f"sum(increase(elevenlabs_agent_link_token_rotations_total{{{AGENT_FILTER}}}[$__range]))",
            span=8,
            height=8,
        )
        .decimals(0)
        .thresholds(_thresholds((None, "blue")))
    )
    return [success, errors, latency, last_success, rotations]


def _health_panels(ids: _Ids) -> list[Any]:
    up = _red_green_stat(
        ids,
        "Monitor up",
        'Prometheus\'s scrape of each monitor instance (up{job="$job"}).',
        'up{job="$job"}',
        red="DOWN",
        green="UP",
    ).no_value("not scraped")
    version = (
        _stat(
            ids,
            "Version",
            "elevenlabs_link_monitor_build_info: the version each running instance reports.",
            "count by (version) (elevenlabs_link_monitor_build_info)",
            legend="{{version}}",
            span=6,
        )
        .text_mode(common.BigValueTextMode.NAME)
        .color_mode(common.BigValueColorMode.NONE)
    )
    cycle_age = (
        _stat(
            ids,
            "Last poll cycle age",
            "Time since each instance last finished a full poll cycle; "
            "it should stay under the poll interval.",
            "time() - elevenlabs_link_monitor_last_cycle_timestamp_seconds",
            legend="{{instance}}",
            span=6,
        )
        .unit("s")
        .thresholds(_thresholds((None, "green"), (900, "orange"), (1800, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )
    reload = _red_green_stat(
        ids,
        "Config reload",
        "Whether each instance's last config (re)load worked; "
        "on a failure it keeps the previous config.",
        "elevenlabs_link_monitor_config_last_reload_successful",
        red="FAILED",
        green="OK",
    )
    return [up, version, cycle_age, reload]


def _label_values_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


def _agent_filter_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    # AGENT_FILTER matches these with =~, so "All" has to be a regex that matches every value.
    return (
        _label_values_variable(name, label, query)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build_dashboard() -> dict[str, Any]:
    """The dashboard as plain JSON-ready data."""
    ids = _Ids()
    builder = (
        dash.Dashboard("ElevenLabs agent links")
        .uid(DASHBOARD_UID)
        .description(
            "Expiry of ElevenLabs agents' shareable links, from elevenlabs-link-monitor. "
            "Generated by deploy/grafana/generate_dashboard.py: do not edit by hand."
        )
        .tags(["elevenlabs", "elevenlabs-link-monitor"])
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            _agent_filter_variable(
                "workspace", "Workspace", "label_values(elevenlabs_agent_link_state, workspace)"
            )
        )
        .with_variable(
            _agent_filter_variable(
                "agent",
                "Agent",
                'label_values(elevenlabs_agent_link_state{workspace=~"$workspace"}, agent_id)',
            ).description("Agent ids in the selected workspaces.")
        )
        .with_variable(
            _label_values_variable(
                "job", "Job", "label_values(elevenlabs_link_monitor_build_info, job)"
            )
            .description("The Prometheus job that scrapes the monitor (for the up series).")
            .current(model.VariableOption(selected=True, text=JOB, value=JOB))
            .hide(model.VariableHide.HIDE_VARIABLE)
        )
    )
    sections = (
        ("Overview", _overview_panels),
        ("Link expiry", _expiry_panels),
        ("Polling", _polling_panels),
        ("Monitor health", _health_panels),
    )
    for title, panels in sections:
        builder = builder.with_row(dash.Row(title).id(ids()))
        for panel in panels(ids):
            builder = builder.with_panel(panel)
    built: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return built


def render_dashboard() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------
# Alert rules

# The alert rules are the monitoring mixin's (deploy/mixin/alerts.libsonnet): each alert's
# Grafana twin (grafanaManagedAlerts) shares its name, for:, severity, runbook and wording
# with the Prometheus alert, and its query inlines the recording rules. The mixin is
# rendered by deploy/mixin/build.py.


def _mixin_alerts() -> list[dict[str, Any]]:
    """The mixin's grafanaManagedAlerts, rendered with its default _config."""
    spec = importlib.util.spec_from_file_location("_mixin_build", MIXIN_BUILD_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {MIXIN_BUILD_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alerts: list[dict[str, Any]] = module.render()["grafanaManagedAlerts"]
    return alerts


_EXPR_DS = model.DataSourceRef(type_val="__expr__", uid="__expr__")


def _expression_query(
    ref_id: str, expression: expr_builders.TypeReduce | expr_builders.TypeThreshold
) -> alert_builders.Query:
    """A server-side expression step of a rule, run by Grafana rather than by Prometheus."""
    return (
        alert_builders.Query(ref_id)
        .datasource_uid("__expr__")
        .model(expression.ref_id(ref_id).datasource(_EXPR_DS))
    )


def _prometheus_query(ref_id: str, expr: str) -> alert_builders.Query:
    """An instant query of the provisioned Prometheus over the past 15 minutes."""
    return (
        alert_builders.Query(ref_id)
        .datasource_uid(ALERT_DATASOURCE_UID)
        .relative_time_range(RelativeTimeRange(from_val=900, to=0))
        .model(
            prometheus.Dataquery()
            .ref_id(ref_id)
            .expr(expr)
            .instant()
            .editor_mode(prom_model.QueryEditorMode.CODE)
            .datasource(model.DataSourceRef(type_val="prometheus", uid=ALERT_DATASOURCE_UID))
        )
    )


def _alert_rule(spec: dict[str, Any]) -> alert_builders.Rule:
    """One Grafana rule from the mixin's twin: A, reduced to its last value (B), against the
    evaluator (C); N names the agent and T gives its threshold, for the annotations only."""
    evaluator, param = spec["evaluator"]
    query = _prometheus_query("A", spec["expr"])
    reduce = _expression_query("B", expr_builders.TypeReduce().expression("A").reducer("last"))
    threshold = _expression_query(
        "C",
        expr_builders.TypeThreshold()
        .expression("B")
        .conditions(
            [
                expr_builders.ExprTypeThresholdConditions().evaluator(
                    expr_builders.ExprTypeThresholdConditionsEvaluator()
                    .type(evaluator)
                    .params([float(param)])
                )
            ]
        ),
    )
    queries: list[Builder[AlertQuery]] = [query, reduce, threshold]
    if spec["names"] is not None:
        # N: the agents' names, for the annotations only (never the alert's labels).
        queries.append(_prometheus_query("N", spec["names"]))
    if spec["threshold"] is not None:
        # T: the agent's threshold, for the annotations only.
        queries.append(_prometheus_query("T", spec["threshold"]))
    return (
        alert_builders.Rule(spec["title"])
        .uid(spec["uid"])
        .condition("C")
        .queries(queries)
        .for_val(spec["for"])
        .no_data_state(spec["noData"])
        .exec_err_state("Error")
        .is_paused(False)
        # No severity for an alert weighted by use: its query's series carry it.
        .labels({} if spec["severity"] is None else {"severity": spec["severity"]})
        .annotations(
            {
                "summary": spec["summary"],
                "description": spec["description"],
                "runbook_url": spec["runbook_url"],
            }
        )
    )


# Fields of the SDK's API-shaped rule that the file-provisioning format does
# not have (the group gives folder, name and org).
_API_ONLY_RULE_FIELDS = ("folderUID", "orgID", "ruleGroup")


def build_alert_rules() -> dict[str, Any]:
    """The alert rules as a Grafana file-provisioning document (apiVersion 1)."""
    group = (
        alert_builders.RuleGroup(ALERT_GROUP)
        .interval(60)
        .rules([_alert_rule(spec) for spec in _mixin_alerts()])
    )
    built = json.loads(json.dumps(group.build(), cls=JSONEncoder))
    rules = []
    for rule in built["rules"]:
        for field in _API_ONLY_RULE_FIELDS:
            rule.pop(field, None)
        _check_no_interpolation(rule)
        rules.append(rule)
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": ALERT_GROUP,
                "folder": ALERT_FOLDER,
                "interval": "1m",
                "rules": rules,
            }
        ],
    }


def _check_no_interpolation(rule: dict[str, Any]) -> None:
    """Grafana expands $VAR from its environment in provisioned labels and queries.

    Annotations are left alone, so their alert templates keep ``$labels`` and ``$values``.
    """
    for value in _strings({key: rule[key] for key in rule if key != "annotations"}):
        if "$" in value:
            raise ValueError(
                f"rule {rule['title']}: Grafana would expand the '$' outside annotations: {value!r}"
            )


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)

ALERTS_HEADER = """\
# Grafana-managed alert rules for elevenlabs-link-monitor (file provisioning,
# apiVersion 1), equivalent to the Prometheus alerts in
# deploy/prometheus/rules.yml: both come from the monitoring mixin (deploy/mixin/).
# Use these OR those, not both, unless you want every alert twice. The queries name the data source with uid "prometheus"
# (provisioning/datasources/prometheus.yaml).
#
# Generated by deploy/grafana/generate_dashboard.py (deploy/mixin/build.py runs it):
# do not edit by hand.
"""


def render_alert_rules() -> str:
    body = yaml.dump(
        build_alert_rules(),
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
        indent=2,
    )
    return ALERTS_HEADER + body


# ---------------------------------------------------------------------------
# Command line


def outputs() -> dict[Path, str]:
    return {DASHBOARD_PATH: render_dashboard(), ALERTS_PATH: render_alert_rules()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed file differs from the output"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (generated)",
                n=1,
            )
            sys.stderr.writelines(list(diff)[:40])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        for path in stale:
            print(
                f"{path} is stale: run python deploy/grafana/generate_dashboard.py", file=sys.stderr
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
