"""A workspace failing as a whole, end to end: the real daemon against the loopback stand-in
whose key is revoked, then restored. /metrics says it once per workspace, with its cause."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ConfigWriter, assert_clean, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

AGENTS = [f"ws_agent_{i}" for i in range(5)]
FAILING = "elevenlabs_link_monitor_workspace_failing"
AGENTS_FAILING = "elevenlabs_link_monitor_workspace_agents_failing"


def causes(daemon: Daemon) -> dict[str, float]:
    return {
        dict(labels)["reason"]: value
        for labels, value in daemon.samples(FAILING).items()
        if dict(labels)["workspace"] == "default"
    }


def test_a_revoked_key_fails_the_workspace_once_and_a_restored_one_clears_it(
    standin: StandIn, write_config: ConfigWriter, start_daemon: Callable[..., Daemon]
) -> None:
    for agent in AGENTS:
        standin.set(agent, link(canary_token(agent), time.time() + 30 * 86400))
    config: Path = write_config(AGENTS, poll={"interval": "1s", "discovery_interval": "2m"})
    daemon = start_daemon(config)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    healthy = dict.fromkeys(
        ["unauthorized", "unreachable", "rate_limited", "api_error", "agents_not_found"], 0.0
    )
    # A 1 s cycle on a loaded machine may cut a poll at its deadline (a timeout): wait for a
    # cycle in which every poll answered.
    wait_until(
        lambda: daemon.value(AGENTS_FAILING, workspace="default") == 0,
        what="a cycle with every poll answered",
    )
    assert causes(daemon) == healthy
    # The staleness rules count in the configured intervals.
    assert daemon.value("elevenlabs_link_monitor_poll_interval_seconds") == 1
    assert daemon.value("elevenlabs_link_monitor_discovery_interval_seconds") == 120

    key = standin.api_key
    standin.api_key = "revoked"  # every request now answers 401 invalid_api_key
    wait_until(
        lambda: daemon.value(AGENTS_FAILING, workspace="default") == len(AGENTS),
        what="every agent's poll to fail",
    )
    assert causes(daemon) == {**healthy, "unauthorized": 1.0}
    # One line for the workspace, where each agent's poll_failed lines repeat every cycle.
    failing = daemon.wait_for("workspace_failing", reason="unauthorized")
    assert failing["workspace"] == "default"
    # The links' states stand: a dead key does not hide a link's expiry.
    assert {daemon.state_of(a) for a in AGENTS} == {"ok"}

    standin.api_key = key
    wait_until(
        lambda: daemon.value(AGENTS_FAILING, workspace="default") == 0,
        what="every agent's poll to answer again",
    )
    assert causes(daemon) == healthy
    daemon.wait_for("workspace_recovered", reason="unauthorized")
    assert len(daemon.events("workspace_failing", reason="unauthorized")) == 1
    assert_clean("/metrics", daemon.metrics_text())
    assert daemon.stop() == 0


def test_a_key_that_sees_none_of_the_agents_is_one_workspace_line(
    standin: StandIn, write_config: ConfigWriter, start_daemon: Callable[..., Daemon]
) -> None:
    """A key of another workspace: the API answers 404 for every configured agent. One
    `workspace_failing` line with reason agents_not_found, where each agent is not_found."""
    for agent in AGENTS:
        standin.set(agent, link(canary_token(agent), time.time() + 30 * 86400))
    daemon = start_daemon(write_config(AGENTS, poll={"interval": "1s", "discovery_interval": "2m"}))
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    with standin.lock:
        answers = dict(standin.answers)
        standin.answers.clear()  # every agent now answers 404 agent_not_found
    line = daemon.wait_for("workspace_failing", reason="agents_not_found")
    assert (line["agents_not_found"], line["agents_polled"]) == (len(AGENTS), len(AGENTS))
    assert causes(daemon)["agents_not_found"] == 1.0
    assert daemon.value(AGENTS_FAILING, workspace="default") == 0  # answers, not failures
    assert {daemon.state_of(a) for a in AGENTS} == {"not_found"}

    with standin.lock:
        standin.answers.update(answers)
    daemon.wait_for("workspace_recovered", reason="agents_not_found")
    assert causes(daemon)["agents_not_found"] == 0.0
    assert len(daemon.events("workspace_failing")) == 1
    assert daemon.stop() == 0
