"""Faults the daemon must survive: the faulty agent is reported with the right reason, every
other agent is unaffected, the process keeps running and nothing it knew is lost."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token, kubelet_secret
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, huge, link, reset_midway, status, trickle

DAY = 86400
StartDaemon = Callable[..., Daemon]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


FAULTS: list[tuple[str, Callable[..., None], str, str]] = [
    ("f_huge", huge(20 * 1024 * 1024), "invalid_response", "the answer is larger than 256 KiB"),
    (
        "f_trickle",
        trickle(b'{"agent_id": "f_trickle", "token": null}', 0.2),  # 8 s in all
        "timeout",
        "no answer within 3s",
    ),
    ("f_reset", reset_midway(), "connection", "the connection broke while reading"),
    ("f_502", status(502), "server_error", "HTTP 502"),
    ("f_504", status(504), "server_error", "HTTP 504"),
    (
        "f_403",
        status(403, {"detail": {"status": "forbidden"}}),
        "unauthorized",
        "HTTP 403 forbidden",
    ),
    ("f_429", status(429), "rate_limited", "HTTP 429"),
]


def test_a_faulty_answer_is_classified_and_isolated(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """One daemon, one agent per fault, and a good one that must not notice."""
    for agent, answer, _, _ in FAULTS:
        standin.set(agent, answer)
    standin.set("good", link(canary_token("g"), time.time() + 30 * DAY))
    agents = [agent for agent, _, _, _ in FAULTS]
    # Every fault at once in one stand-in: 3 s leaves the quick answers (a 429, a 502) room
    # while the trickle and the 20 MB body compete for the same process.
    daemon = start_daemon(write_config([*agents, "good"], elevenlabs={"timeout": "3s"}))
    for agent, _, reason, detail in FAULTS:
        failed = daemon.wait_for("poll_failed", agent_id=agent)
        assert (failed["reason"], failed["detail"]) == (reason, detail), agent
        assert daemon.state_of(agent) == "unknown"
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert daemon.get("/healthz")[0] == 200


@pytest.mark.parametrize(
    ("base_url", "detail"),
    [
        (f"http://127.0.0.1:{_closed_port()}", "cannot connect"),
        ("http://no-such-host.invalid", "cannot connect"),
    ],
    ids=["closed-port", "no-such-host"],  # not the port: the same ids in every collection
)
def test_an_unreachable_workspace_does_not_affect_another(
    standin: StandIn, tmp_path: Path, start_daemon: StartDaemon, base_url: str, detail: str
) -> None:
    standin.set("good", link(canary_token("g"), None))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspaces": [
                    {
                        "name": "up",
                        "base_url": standin.url,
                        "agents": [{"id": "good"}],
                        "max_retries": 0,
                    },
                    {
                        "name": "down",
                        "base_url": base_url,
                        "agents": [{"id": "bad"}],
                        "max_retries": 0,
                        "timeout": "2s",
                    },
                ],
                "poll": {"interval": "1h", "jitter": 0},
                "server": {"host": "127.0.0.1", "port": 0},
            }
        )
    )
    daemon = start_daemon(config)
    failed = daemon.wait_for("poll_failed", agent_id="bad")
    assert (failed["workspace"], failed["reason"], failed["detail"]) == (
        "down",
        "connection",
        detail,
    )
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert (
        daemon.value("elevenlabs_agent_link_state", workspace="up", agent_id="good", state="ok")
        == 1
    )


def test_the_rate_limit_and_concurrency_hold_at_the_server_retries_included(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    agents = [f"a{i}" for i in range(12)]
    for agent in agents[:8]:
        standin.set(agent, link(canary_token(agent), None))
    for agent in agents[8:]:
        standin.set(agent, status(503))
    daemon = start_daemon(
        write_config(
            agents,
            elevenlabs={"max_requests_per_second": 4, "max_concurrency": 2, "max_retries": 1},
        )
    )
    wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30)
    # Every failing agent retried once (the usage listings aside: their own requests).
    assert sum(standin.count(a) for a in agents) == 8 + 4 * 2
    assert standin.max_per_window(1.0) <= 4
    assert standin.max_in_flight <= 2


# --- where the runtime's pieces meet (each of these failed on the one-class scheduler) ------


def test_every_poll_ends_with_a_verdict_even_one_its_cycle_cannot_wait_for(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """An answer slower than the cycle (6 s, timeout 1 s, one retry, a 2 s interval) and a
    Retry-After longer than the cycle: both are judged, and the cycles count as full."""
    from tests.standin import hang

    standin.set("slow", hang(6, link(canary_token("s"), None)))
    standin.set("busy", status(429, {"detail": {"status": "system_busy"}}, {"Retry-After": "30"}))
    standin.set("fast", link(canary_token("f"), None))
    daemon = start_daemon(
        write_config(
            ["slow", "busy", "fast"],
            elevenlabs={"timeout": "1s", "max_retries": 1},
            poll={"interval": "2s", "jitter": 0},
        )
    )
    busy = daemon.wait_for("poll_failed", agent_id="busy")
    assert busy["reason"] == "rate_limited"
    assert standin.count("busy") == 1  # not retried: the wait would outlast the cycle
    slow = daemon.wait_for("poll_failed", agent_id="slow")
    assert slow["reason"] == "timeout"
    wait_until(lambda: daemon.value("elevenlabs_link_monitor_last_cycle_timestamp_seconds"))
    assert daemon.get("/readyz")[0] == 200
    assert daemon.value(
        "elevenlabs_agent_link_poll_errors_total", agent_id="slow", reason="timeout"
    )
    assert daemon.value(
        "elevenlabs_agent_link_poll_errors_total", agent_id="busy", reason="rate_limited"
    )
    assert daemon.value("elevenlabs_link_monitor_cycles_overrun_total") == 0
    assert not daemon.events("cycle_overrun")


def test_readiness_holds_when_agents_are_added(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    from tests.standin import hang

    standin.listing = [("d1", "one", False)]
    standin.set("d1", link(canary_token("d1"), None))
    standin.set("d2", hang(30, link(canary_token("d2"), None)))
    daemon = start_daemon(
        write_config(
            [],
            discover=True,
            elevenlabs={"timeout": "30s"},
            poll={"interval": "1h", "jitter": 0, "discovery_interval": "1s"},
        )
    )
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    standin.listing = [("d1", "one", False), ("d2", "two", False)]
    wait_until(lambda: standin.count("d2") == 1, what="the new agent's first poll")
    assert daemon.state_of("d2") == "unknown"
    assert daemon.get("/readyz")[0] == 200
    code, body = daemon.get("/api/v1/status")
    assert code == 200
    assert json.loads(body)["ready"] is True


def test_a_rotated_secret_is_picked_up_without_a_signal(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    key_file = kubelet_secret(secret, CANARY_KEY, 1)
    standin.set("bot", link(canary_token("k"), None))
    path = write_config(
        ["bot"], elevenlabs={"api_key_file": str(key_file)}, poll={"interval": "1s", "jitter": 0}
    )
    daemon = start_daemon(path, env={"ELEVENLABS_API_KEY": ""})
    wait_until(lambda: daemon.state_of("bot") == "ok")
    rotated = CANARY_KEY + "_rotated"
    standin.api_key = rotated
    kubelet_secret(secret, rotated, 2)
    reloaded = daemon.wait_for("config_reloaded", timeout=10)
    assert reloaded["cause"] == "key file changed"
    polls = standin.count("bot")
    wait_until(lambda: standin.count("bot") > polls + 1)
    assert standin.requests[-1].headers["xi-api-key"] == rotated
    assert daemon.state_of("bot") == "ok"
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 1
    # A bad key file keeps the running key.
    kubelet_secret(secret, "", 3)
    daemon.wait_for("config_reload_failed", timeout=10)
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 0
    polls = standin.count("bot")
    wait_until(lambda: standin.count("bot") > polls + 1)
    assert standin.requests[-1].headers["xi-api-key"] == rotated
    assert daemon.state_of("bot") == "ok"


def test_the_rate_limit_holds_through_a_reload_that_replaces_the_client(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    agents = [f"r{i}" for i in range(12)]
    for agent in agents:
        standin.set(agent, link(canary_token(agent), None))
    limits = {"max_requests_per_second": 4, "max_concurrency": 8}
    path = write_config(agents[:6], elevenlabs=limits)
    daemon = start_daemon(path)
    wait_until(lambda: standin.count() >= 1)
    # A changed timeout replaces the client; the added agents go through the new one at once.
    write_config(agents, path=path, elevenlabs={**limits, "timeout": "3s"})
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reloaded")
    wait_until(lambda: standin.count() == 12, timeout=30)
    starts = sorted(r.at for r in standin.requests)
    assert standin.max_per_window(1.0) <= 4, [round(t - starts[0], 3) for t in starts]


def test_a_listing_keeps_its_client_through_a_reload_that_replaces_it(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.listing = [(f"l{i:03d}", "", False) for i in range(250)]  # three pages
    limits = {"max_requests_per_second": 1, "max_concurrency": 1}
    path = write_config(
        [], discover=True, elevenlabs=limits, poll={"interval": "1h", "discovery_interval": "1h"}
    )
    daemon = start_daemon(path)
    wait_until(lambda: standin.count() >= 1)  # the first page: the listing holds its client
    write_config(
        [],
        path=path,
        discover=True,
        elevenlabs={**limits, "timeout": "3s"},
        poll={"interval": "1h", "discovery_interval": "1h"},
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reloaded")
    wait_until(
        lambda: (
            daemon.value("elevenlabs_link_monitor_discovered_agents", workspace="default") == 250
        ),
        timeout=10,
    )
    assert not daemon.events("discovery_failed")


def test_series_of_a_removed_workspace_leave_metrics(
    standin: StandIn, tmp_path: Path, start_daemon: StartDaemon
) -> None:
    standin.listing = [("e1", "", False)]
    standin.set("e1", link(canary_token("e1"), None))
    standin.set("p1", link(canary_token("p1"), None))

    def write(with_eu: bool) -> Path:
        workspaces: list[dict[str, object]] = [
            {"name": "prod", "base_url": standin.url, "agents": [{"id": "p1"}]}
        ]
        if with_eu:
            workspaces.append({"name": "eu", "base_url": standin.url, "discover": True})
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "workspaces": workspaces,
                    "poll": {"interval": "1h", "jitter": 0},
                    "server": {"host": "127.0.0.1", "port": 0},
                }
            )
        )
        return config

    daemon = start_daemon(write(with_eu=True))
    discovered = "elevenlabs_link_monitor_discovered_agents"
    wait_until(lambda: daemon.value(discovered, workspace="eu") == 1)
    write(with_eu=False)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reloaded")
    assert daemon.value(discovered, workspace="eu") is None
    assert 'workspace="eu"' not in daemon.metrics_text()
