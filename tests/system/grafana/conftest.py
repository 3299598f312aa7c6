"""Fixtures for the Grafana, alerting and compose artifacts under deploy/."""

from __future__ import annotations

import importlib.util
import json
import os
from types import ModuleType
from typing import Any

import pytest

from tests.system.grafana.support import (
    ALERT_RULES,
    COMPOSE,
    DASHBOARD,
    GENERATOR,
    GRAFANA,
    load_module,
    read_yaml,
)


@pytest.fixture(scope="session")
def promql() -> ModuleType:
    return load_module("grafana_promql", GRAFANA / "promql.py")


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    """deploy/grafana/generate_dashboard.py; needs the dev dependency grafana-foundation-sdk."""
    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        message = "grafana-foundation-sdk is not installed (a dev dependency)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return load_module("grafana_generate_dashboard", GENERATOR)


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def alert_rules() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(ALERT_RULES)
    return data


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(COMPOSE)
    return data
