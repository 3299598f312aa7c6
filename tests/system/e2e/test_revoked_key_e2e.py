"""A revoked key, end to end: the real daemon, a real Prometheus, the project's rules.

Workspace `revoked` has 200 agents and a key the API rejects; workspace `healthy` has one
agent whose link has expired and one that is fine. On a real Prometheus evaluating
deploy/prometheus/rules.yml (every `for:` set to 0s, as in test_prometheus_e2e.py: the
durations are the promtool tests' business), exactly one alert fires for the revoked
workspace (ElevenLabsWorkspaceKeyRejected), no agent's poll-failure alert fires, and the
expired link of the healthy workspace still pages.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from tests.daemon import wait_until
from tests.standin import StandIn, link
from tests.system.e2e.test_prometheus_e2e import (  # noqa: F401 - start_prometheus: a fixture
    RULES,
    WAIT,
    StartDaemon,
    StartPrometheus,
    active_alerts,
    next_evaluation,
    settle,
    start_prometheus,
)

REVOKED = [f"revoked_{i:03d}" for i in range(200)]
DAY = 86400.0


def rules_for_0s(directory: Path) -> Path:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    target = directory / "rules-for-0s.yml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def config(standin: StandIn, directory: Path) -> Path:
    common: dict[str, Any] = {
        "base_url": standin.url,
        "timeout": "2s",
        "max_concurrency": 16,
        "max_requests_per_second": 400,
        "max_retries": 0,
    }
    data = {
        "workspaces": [
            {
                **common,
                "name": "healthy",
                "api_key_env": "KEY_HEALTHY",
                "agents": [{"id": "healthy_expired"}, {"id": "healthy_ok"}],
            },
            {
                **common,
                "name": "revoked",
                "api_key_env": "KEY_REVOKED",
                "agents": [{"id": agent} for agent in REVOKED],
            },
        ],
        "poll": {"interval": "5s", "jitter": 0},
        "server": {"host": "127.0.0.1", "port": 0},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_revoked_key_pages_once_and_a_dying_link_still_pages(
    standin: StandIn,
    tmp_path: Path,
    start_daemon: StartDaemon,
    start_prometheus: StartPrometheus,  # noqa: F811 - the fixture imported above
) -> None:
    now = time.time()
    standin.set("healthy_expired", link("tok_expired_link_000000000000", now - 3600))
    standin.set("healthy_ok", link("tok_healthy_link_000000000000", now + 30 * DAY))
    for agent in REVOKED:  # what a valid key would read: the key is what fails
        standin.set(agent, link("tok_revoked_link_000000000000", now + 30 * DAY))
    env = {"KEY_HEALTHY": standin.api_key, "KEY_REVOKED": "xi-revoked-key-0000000000"}
    daemon = start_daemon(config(standin, tmp_path), env=env)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, WAIT, "the first poll of every agent")
    base = start_prometheus(daemon.url.removeprefix("http://"), rules_for_0s(tmp_path))

    def fired() -> list[str]:
        names = [
            (a["labels"]["alertname"], a["labels"].get("workspace")) for a in active_alerts(base)
        ]
        wanted = [
            ("ElevenLabsWorkspaceKeyRejected", "revoked"),
            ("ElevenLabsAgentLinkExpired", "healthy"),
        ]
        return [f"not firing yet: {want}" for want in wanted if want not in names]

    settle(fired, "the workspace alert and the expired link's alert")
    # A few more evaluations on the same data: nothing else comes up.
    next_evaluation(base)
    next_evaluation(base)
    alerts = active_alerts(base)
    by_name: dict[str, list[dict[str, str]]] = {}
    for alert in alerts:
        by_name.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
    assert [a["workspace"] for a in by_name.pop("ElevenLabsWorkspaceKeyRejected")] == ["revoked"]
    assert [a["agent_id"] for a in by_name.pop("ElevenLabsAgentLinkExpired")] == ["healthy_expired"]
    # Not one of the 200 agents' poll-failure alerts, nor anything else.
    assert by_name == {}
    assert daemon.stop() == 0
