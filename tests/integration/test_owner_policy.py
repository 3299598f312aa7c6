"""Owners and policy end to end: the real daemon against the loopback stand-in, an agent with
its own thresholds and labels beside one with the global ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import canary_token, config_data
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

DAY = 86400


def test_an_agents_own_thresholds_and_labels_reach_metrics_and_the_log(
    standin: StandIn, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    expiry = time.time() + 10 * DAY  # the same for both: 10d left
    for agent in ("pay", "support"):
        standin.set(agent, link(canary_token(agent), expiry))
    data = config_data(standin.url, ["pay", "support"], labels={"team": "support", "env": "prod"})
    data["agents"][0]["labels"] = {"team": "payments"}
    data["agents"][0]["thresholds"] = {"warning": "30d", "critical": "3d"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    daemon = start_daemon(path)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")

    assert daemon.state_of("pay") == "warning"  # within its own 30d
    assert daemon.state_of("support") == "ok"  # the global 7d is further away
    info = {dict(k)["agent_id"]: dict(k) for k in daemon.samples("elevenlabs_agent_info")}
    assert info == {
        "pay": {
            "workspace": "default",
            "agent_id": "pay",
            "agent_name": "pay-name",
            "team": "payments",
            "env": "prod",
        },
        "support": {
            "workspace": "default",
            "agent_id": "support",
            "agent_name": "support-name",
            "team": "support",
            "env": "prod",
        },
    }
    thresholds = {
        (labels["agent_id"], labels["level"]): value
        for key, value in daemon.samples("elevenlabs_agent_link_threshold_seconds").items()
        for labels in [dict(key)]
    }
    assert thresholds == {
        ("pay", "warning"): 30 * DAY,
        ("pay", "critical"): 3 * DAY,
        ("support", "warning"): 7 * DAY,
        ("support", "critical"): DAY,
    }
    [alert] = daemon.events("link_alert")
    assert (alert["agent_id"], alert["state"], alert["level"]) == ("pay", "warning", "warning")
    assert daemon.stop() == 0
