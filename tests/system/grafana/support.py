"""Paths, the contract's metric names and loaders for the tests of the artifacts under deploy/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"
GENERATOR = GRAFANA / "generate_dashboard.py"
DASHBOARD = GRAFANA / "dashboards" / "elevenlabs-link-monitor.json"
ALERT_RULES = GRAFANA / "provisioning" / "alerting" / "elevenlabs-link-monitor.yaml"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_PROMETHEUS = DEPLOY / "compose" / "prometheus.yml"
COMPOSE_ALERTMANAGER = DEPLOY / "compose" / "alertmanager.yml"
PROMETHEUS_RULES = DEPLOY / "prometheus" / "rules.yml"
JOB = "elevenlabs-link-monitor"

# The public metric names (shared CONTRACT.md, "Metrics"), as exposed.
CONTRACT_METRICS = frozenset(
    {
        "elevenlabs_agent_info",
        "elevenlabs_agent_link_expiry_timestamp_seconds",
        "elevenlabs_agent_link_expires_in_seconds",
        "elevenlabs_agent_link_token_missing",
        "elevenlabs_agent_link_state",
        "elevenlabs_agent_link_poll_success",
        "elevenlabs_agent_link_last_success_timestamp_seconds",
        "elevenlabs_agent_link_poll_errors_total",
        "elevenlabs_agent_link_token_rotations_total",
        "elevenlabs_agent_link_threshold_seconds",
        "elevenlabs_link_monitor_agents",
        "elevenlabs_link_monitor_poll_duration_seconds_bucket",
        "elevenlabs_link_monitor_poll_duration_seconds_sum",
        "elevenlabs_link_monitor_poll_duration_seconds_count",
        "elevenlabs_link_monitor_last_cycle_timestamp_seconds",
        "elevenlabs_link_monitor_config_last_reload_successful",
        "elevenlabs_link_monitor_build_info",
    }
)
# Prometheus's own series for a scrape target.
ALLOWED_METRICS = CONTRACT_METRICS | {"up"}
# The daemon's own series beyond the contract (README "Metrics") that an alert rule reads.
ALERT_ONLY_METRICS = frozenset(
    {
        "elevenlabs_link_monitor_cycles_overrun_total",
        "elevenlabs_link_monitor_discovery_last_success_timestamp_seconds",
        "elevenlabs_link_monitor_discovery_errors_total",
        "process_start_time_seconds",
        # Workspace health and the configured intervals (issue 18).
        "elevenlabs_link_monitor_workspace_failing",
        "elevenlabs_link_monitor_poll_interval_seconds",
        "elevenlabs_link_monitor_discovery_interval_seconds",
        # Usage and exposure (issue 19): the alerts weighted by use, archived agents.
        "elevenlabs_agent_last_call_timestamp_seconds",
        "elevenlabs_agent_never_called",
        "elevenlabs_agent_archived",
    }
)


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
