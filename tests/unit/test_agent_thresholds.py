"""Per-agent thresholds: `thresholds:` on a workspace and on an agent override the global pair
key by key; the pair resolved must keep warning above critical (one located line per override
that breaks it); the state, the alert log, /metrics (state and the threshold series), the
status page and `check` all evaluate an agent with its own pair."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from starlette.applications import Starlette

from monitor.config.holder import ConfigHolder, Settings
from monitor.config.schema import Config
from monitor.evaluate import Kind, Observation, Thresholds
from monitor.model import AgentKey, Health, LinkAnswer, Target
from monitor.runtime.targets import resolve_targets
from monitor.runtime.wiring import Runtime
from monitor.store import Store
from monitor.web.metrics import Metrics
from monitor.web.status.routes import status_routes
from tests.cli import run_cli
from tests.conftest import CANARY_KEY, canary_token, config_data
from tests.fakeapi import FakeApi, expires
from tests.fakeclock import FakeClockLoop, fake_clock, wall_stamped_logs
from tests.standin import StandIn, link
from tests.unit.test_config import problems

DAY = 86400.0
NOW = 1_800_000_000.0
THRESHOLD = "elevenlabs_agent_link_threshold_seconds"


# --- refused at load, one line each -----------------------------------------------------------


def test_an_agents_pair_out_of_order_is_one_line_naming_the_agent() -> None:
    text = "agents:\n  - id: a\n  - id: b\n  - id: c\n    thresholds: {warning: 2d, critical: 3d}\n"
    assert problems(text) == [
        "config.yaml:5: agents[2].thresholds: warning (2d) must be greater than critical (3d)"
    ]


def test_an_inherited_value_says_where_it_comes_from() -> None:
    text = (
        "thresholds: {warning: 3d, critical: 1d}\n"
        "workspaces:\n"
        "  - name: prod\n"
        "    thresholds: {warning: 12h}\n"
        "    agents:\n"
        "      - id: a\n"
        "        thresholds: {critical: 12h}\n"
        "      - id: b\n"  # inherits the workspace's bad pair: that one line says it
        "  - name: eu\n"
        "    agents:\n"
        "      - id: a\n"
        "        thresholds: {critical: 5d}\n"
    )
    assert problems(text) == [
        "config.yaml:4: workspaces[0].thresholds: "
        "warning (12h) must be greater than critical (1d, from thresholds)",
        "config.yaml:7: workspaces[0].agents[0].thresholds: "
        "warning (12h, from workspaces[0].thresholds) must be greater than critical (12h)",
        "config.yaml:12: workspaces[1].agents[0].thresholds: "
        "warning (3d, from thresholds) must be greater than critical (5d)",
    ]


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("{warning: 3651d}", "agents[0].thresholds.warning: warning (3651d) must be at most 3650d"),
        ("{critical: soon}", "agents[0].thresholds.critical: invalid duration 'soon': use seconds"),
        ("{critical: -1}", "agents[0].thresholds.critical: a duration cannot be negative, got -1"),
        ("{warn: 1d}", "agents[0].thresholds.warn: unknown key"),
        ("30d", "agents[0].thresholds: Input should be a valid dictionary"),
    ],
)
def test_a_bad_override_value_is_one_line(override: str, line: str) -> None:
    [problem] = problems(f"agents:\n  - id: a\n    thresholds: {override}\n")
    assert problem.startswith(f"config.yaml:3: {line}"), problem


def test_validate_config_refuses_a_bad_override(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("agents:\n  - id: a\n    thresholds: {critical: 8d}\n")
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {path}:3: agents[0].thresholds: "
        "warning (1w, from thresholds) must be greater than critical (8d)\n"
    )


# --- resolved key by key: global, workspace, agent -------------------------------------------

seconds = st.integers(min_value=0, max_value=40).map(lambda n: n * 3600.0)
partial = st.fixed_dictionaries({}, optional={"warning": seconds, "critical": seconds})


@given(
    top=st.tuples(seconds, seconds).filter(lambda p: p[0] > p[1]),
    workspace=st.none() | partial,
    agent=st.none() | partial,
)
def test_overrides_resolve_key_by_key(
    top: tuple[float, float], workspace: dict[str, float] | None, agent: dict[str, float] | None
) -> None:
    space: dict[str, Any] = {"name": "prod", "discover": True, "agents": [{"id": "own"}]}
    if workspace is not None:
        space["thresholds"] = workspace
    if agent is not None:
        space["agents"][0]["thresholds"] = agent
    data = {
        "thresholds": {"warning": top[0], "critical": top[1]},
        "workspaces": [space, {"name": "other", "agents": [{"id": "own"}]}],
    }
    inherited = {"warning": top[0], "critical": top[1], **(workspace or {})}
    own = {**inherited, **(agent or {})}
    valid = (workspace is None or inherited["warning"] > inherited["critical"]) and (
        agent is None or own["warning"] > own["critical"]
    )
    if not valid:
        with pytest.raises(ValidationError):
            Config.model_validate(data)
        return
    settings = Settings.of(Config.model_validate(data))
    assert settings.thresholds_for(AgentKey("prod", "own")) == Thresholds(**own)
    assert settings.thresholds_for(AgentKey("prod", "discovered")) == Thresholds(**inherited)
    assert settings.thresholds_for(AgentKey("other", "own")) == Thresholds(*top)


def test_in_the_single_form_the_global_pair_is_the_workspaces() -> None:
    settings = Settings.of(
        Config.model_validate(
            {
                "thresholds": {"warning": "10d", "critical": "2d"},
                "discover": True,
                "agents": [{"id": "a", "thresholds": {"warning": "30d"}}, {"id": "b"}],
            }
        )
    )
    assert settings.thresholds_for(AgentKey("default", "a")) == Thresholds(30 * DAY, 2 * DAY)
    assert settings.thresholds_for(AgentKey("default", "b")) is settings.thresholds
    assert settings.thresholds_for(AgentKey("default", "listed")) is settings.thresholds


# --- everything evaluates an agent with its own pair ------------------------------------------


def two_agents(expires_in: float) -> tuple[Config, Store]:
    """`own` (warning 30d, critical 3d) and `plain` (the global 7d/1d), same expiry."""
    config = Config.model_validate(
        {
            "agents": [
                {"id": "own", "thresholds": {"warning": "30d", "critical": "3d"}},
                {"id": "plain"},
            ]
        }
    )
    store = Store()
    store.sync(resolve_targets(config))
    for agent in ("own", "plain"):
        answer = LinkAnswer(Observation(Kind.LINK, NOW + expires_in), "f")
        store.record(answer, AgentKey("default", agent), NOW)
    return config, store


def samples(metrics: Metrics, name: str) -> dict[tuple[str, str], float]:
    """(agent_id, state or level) -> value, of one family."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().body().decode()):
        for sample in family.samples:
            if sample.name == name:
                labels = sample.labels
                found[labels["agent_id"], labels.get("state", labels.get("level", ""))] = (
                    sample.value
                )
    return found


def current_states(metrics: Metrics) -> dict[str, str]:
    states = samples(metrics, "elevenlabs_agent_link_state")
    return {agent: state for (agent, state), value in states.items() if value == 1}


def test_metrics_show_each_agents_state_by_its_own_thresholds() -> None:
    config, store = two_agents(10 * DAY)
    now = [NOW]
    metrics = Metrics(store, Health(), ConfigHolder(config), lambda: now[0])
    assert current_states(metrics) == {"own": "warning", "plain": "ok"}
    now[0] = NOW + 7 * DAY + 1  # under 3d left: own's critical, plain's warning
    assert current_states(metrics) == {"own": "critical", "plain": "warning"}


def test_the_threshold_series_says_each_agents_pair() -> None:
    config = Config.model_validate(
        {
            "thresholds": {"warning": "10d"},
            "workspaces": [
                {
                    "name": "prod",
                    "discover": True,
                    "thresholds": {"critical": "2d"},
                    "agents": [{"id": "own", "thresholds": {"warning": "30d"}}],
                },
                {"name": "eu", "agents": [{"id": "plain"}]},
            ],
        }
    )
    store = Store()
    store.sync(resolve_targets(config, {"prod": [Target(AgentKey("prod", "listed"))]}))
    metrics = Metrics(store, Health(), ConfigHolder(config), lambda: NOW)
    text = metrics.render().body().decode()
    assert f"# TYPE {THRESHOLD} gauge\n" in text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == THRESHOLD:
                labels = sample.labels
                assert set(labels) == {"workspace", "agent_id", "level"}
                found[labels["workspace"], labels["agent_id"], labels["level"]] = sample.value
    assert found == {
        ("prod", "own", "warning"): 30 * DAY,
        ("prod", "own", "critical"): 2 * DAY,
        ("prod", "listed", "warning"): 10 * DAY,
        ("prod", "listed", "critical"): 2 * DAY,
        ("eu", "plain", "warning"): 10 * DAY,
        ("eu", "plain", "critical"): DAY,
    }


def test_a_reload_that_changes_one_agents_pair_re_renders_it() -> None:
    config, store = two_agents(10 * DAY)
    holder = ConfigHolder(config)
    metrics = Metrics(store, Health(), holder, lambda: NOW)
    assert current_states(metrics) == {"own": "warning", "plain": "ok"}
    holder.swap(
        Config.model_validate(
            {"agents": [{"id": "own"}, {"id": "plain", "thresholds": {"warning": "11d"}}]}
        )
    )
    assert current_states(metrics) == {"own": "ok", "plain": "warning"}
    assert samples(metrics, THRESHOLD)["plain", "warning"] == 11 * DAY


def test_the_status_page_shows_each_agents_state_by_its_own_thresholds() -> None:
    config, store = two_agents(10 * DAY)
    app = Starlette(routes=status_routes(store, Health(), ConfigHolder(config), lambda: NOW))

    async def get(path: str) -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as c:
            return (await c.get(path)).json()

    agents = asyncio.run(get("/api/v1/agents"))["agents"]
    assert {a["agent_id"]: a["state"] for a in agents} == {"own": "warning", "plain": "ok"}
    status = asyncio.run(get("/api/v1/status"))
    assert status["states"]["warning"] == 1
    assert status["states"]["ok"] == 1


def test_check_exits_by_each_agents_own_thresholds(standin: StandIn, tmp_path: Path) -> None:
    expiry = time.time() + 10 * DAY
    for agent in ("own", "plain"):
        standin.set(agent, link(canary_token(agent), expiry))
    data = config_data(standin.url, ["own", "plain"])
    data["agents"][0]["thresholds"] = {"warning": "30d", "critical": "3d"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    done = run_cli("check", "--config", str(path), "--output", "json", key=CANARY_KEY)
    assert done.returncode == 1, done.stderr  # one warning
    rows = {row["agent_id"]: row["state"] for row in json.loads(done.stdout)["agents"]}
    assert rows == {"own": "warning", "plain": "ok"}


# --- the alert log, on time ---------------------------------------------------------------------


def test_the_alert_log_crosses_each_agents_own_thresholds_on_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fake_clock(monkeypatch) as loop, wall_stamped_logs(loop) as logged:
        alerts_on_time(loop, logged)


def alerts_on_time(loop: FakeClockLoop, logged: list[MutableMapping[str, Any]]) -> None:
    api = FakeApi()
    expiry = loop.wall() + 100
    for agent in ("own", "plain"):
        api.set(agent, expires(expiry))
    data = config_data(
        "http://127.0.0.1:9",
        ["own", "plain"],
        thresholds={"warning": "20s", "critical": "10s"},
        poll={"interval": "1h", "jitter": 0},
    )
    data["agents"][0]["thresholds"] = {"warning": "60s", "critical": "30s"}
    runtime = Runtime(
        Config.model_validate(data), lambda _: "k", clock=loop.wall, make_client=api.client
    )

    async def main() -> None:
        runtime.start()
        await asyncio.sleep(110)  # no poll in between: the clock alone moves the states
        await runtime.stop()

    loop.run(main())
    alerts = [line for line in logged if line["event"] == "link_alert"]
    crossings = {
        ("own", "warning"): expiry - 60,
        ("own", "critical"): expiry - 30,
        ("plain", "warning"): expiry - 20,
        ("plain", "critical"): expiry - 10,
        ("own", "expired"): expiry,
        ("plain", "expired"): expiry,
    }
    assert sorted((a["agent_id"], a["state"]) for a in alerts) == sorted(crossings)
    for alert in alerts:
        crossing = crossings[alert["agent_id"], alert["state"]]
        assert crossing <= alert["at"] < crossing + 0.3, alert
