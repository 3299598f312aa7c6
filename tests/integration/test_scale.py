"""Discovery, several workspaces and shards: other sources of targets for the same poller."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link, status

StartDaemon = Callable[..., Daemon]


# --- shards ---------------------------------------------------------------------------------


def test_the_shard_hash_is_stable_across_processes() -> None:
    """Python's hash() is salted per process; replicas must agree, so it is not used."""
    code = (
        "from monitor.runtime.targets import Shard; from monitor.model import AgentKey;"
        "print([i for i in range(50) if Shard(0, 3).owns(AgentKey('w', f'a{i}'))])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1
    assert runs.pop().startswith("[")


# --- the daemon -----------------------------------------------------------------------------


def test_discovery_watches_every_listed_agent_and_follows_the_listing(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    listed = [(f"d{i:03d}", f"bot-{i}", i % 50 == 7) for i in range(230)]  # 3 pages of 100
    standin.listing = listed
    for agent_id, _, _ in listed:
        standin.set(agent_id, link(canary_token(agent_id), time.time() + 30 * 86400))
    standin.set("configured", link(None))
    path = write_config(
        ["configured"],
        # The live listing only: the exposure sweep of the archived ones is test_usage.py's.
        discover={"archived": False},
        poll={"interval": "1h", "jitter": 0, "discovery_interval": "1s"},
        elevenlabs={"max_requests_per_second": 1000, "max_concurrency": 16},
    )
    daemon = start_daemon(path)
    active = [a for a in listed if not a[2]]
    wait_until(lambda: daemon.value("elevenlabs_link_monitor_agents") == len(active) + 1)
    assert daemon.value("elevenlabs_link_monitor_discovered_agents", workspace="default") == len(
        active
    )
    pages = [r.path for r in standin.requests if r.path.startswith("/v1/convai/agents?")]
    assert "page_size=100" in pages[0]
    assert any("cursor=200" in p for p in pages)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30)
    assert daemon.value("elevenlabs_agent_link_state", agent_id="d001", state="ok") == 1
    assert 'agent_name="bot-1"' in daemon.metrics_text()
    assert "d007" not in daemon.metrics_text()  # archived
    # A failed listing keeps the last list, is logged and counted.
    standin.listing = status(503)
    daemon.wait_for("discovery_failed", reason="server_error")
    wait_until(
        lambda: daemon.value(
            "elevenlabs_link_monitor_discovery_errors_total",
            workspace="default",
            reason="server_error",
        )
    )
    assert daemon.value("elevenlabs_link_monitor_agents") == len(active) + 1
    # An agent that leaves the listing leaves /metrics.
    standin.listing = [a for a in listed if a[0] != "d001"]
    wait_until(
        lambda: daemon.value("elevenlabs_agent_link_state", agent_id="d001", state="ok") is None
    )
    assert daemon.state_of("configured") == "missing"


def test_three_replicas_watch_every_agent_exactly_once_at_the_server(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    agents = [f"s{i}" for i in range(30)]
    for agent in agents:
        standin.set(agent, link(canary_token(agent), None))
    path = write_config(agents)
    replicas = [
        start_daemon(path, "--shard", "0/3"),
        start_daemon(path, env={"MONITOR_SHARD": "1/3"}),
        start_daemon(path, "--shard", "2/3"),
    ]
    for daemon in replicas:
        wait_until(lambda d=daemon: d.get("/readyz")[0] == 200)  # type: ignore[misc]
    # The link polls (each replica also lists the workspace for its agents' usage).
    polled = sorted(r.path.split("/")[4] for r in standin.requests if r.path.endswith("/link"))
    assert polled == sorted(agents)  # each agent asked for once, by one replica
    watched = [
        {dict(k)["agent_id"] for k in d.samples("elevenlabs_agent_link_poll_success")}
        for d in replicas
    ]
    assert sum(len(w) for w in watched) == len(agents)
    assert set().union(*watched) == set(agents)
    assert [d.events("monitor_started")[0]["shard"] for d in replicas] == ["0/3", "1/3", "2/3"]


def test_workspaces_have_their_own_keys_and_a_slow_one_delays_no_other(
    standin: StandIn, tmp_path: Path, start_daemon: StartDaemon
) -> None:
    from tests.standin import hang

    slow = StandIn("sk_other_workspace_key")
    try:
        standin.set("fast_bot", link(canary_token("fast"), None))
        slow.set("slow_bot", hang(30, link(canary_token("slow"), None)))
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "workspaces": [
                        {"name": "prod", "base_url": standin.url, "agents": [{"id": "fast_bot"}]},
                        {
                            "name": "eu",
                            "base_url": slow.url,
                            "api_key_env": "EU_KEY",
                            "timeout": "30s",
                            "agents": [{"id": "slow_bot"}],
                        },
                    ],
                    "poll": {"interval": "1h", "jitter": 0},
                    "server": {"host": "127.0.0.1", "port": 0},
                }
            )
        )
        daemon = start_daemon(config, env={"EU_KEY": "sk_other_workspace_key"})
        wait_until(lambda: daemon.state_of("fast_bot") == "ok")
        assert daemon.state_of("slow_bot") == "unknown"  # still waiting on the slow API
        assert slow.requests[0].headers["xi-api-key"] == "sk_other_workspace_key"
        assert standin.requests[0].headers["xi-api-key"] != "sk_other_workspace_key"
        slow._server.release.set()  # type: ignore[attr-defined]
        wait_until(lambda: daemon.state_of("slow_bot") == "ok")
        assert (
            daemon.value(
                "elevenlabs_agent_link_state", workspace="eu", agent_id="slow_bot", state="ok"
            )
            == 1
        )
    finally:
        slow.close()


def test_a_bad_listing_row_is_skipped_alone_and_a_null_name_is_an_empty_name(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """One row that does not fit the schema used to fail the whole workspace's listing:
    the monitor then watched nothing, silently. Now only that row is skipped, logged by its
    index and field, never its content; `name: null` is an unnamed agent, not a bad row."""
    secret = canary_token("in-a-bad-row")
    rows = [
        {"agent_id": "named", "name": "ok"},
        {"agent_id": "unnamed", "name": None},
        {"agent_id": "bad_name", "name": {"oops": secret}},
        {"name": secret},  # no agent_id
        secret,  # not even an object
        {"agent_id": "last", "name": "fine"},
    ]
    body = json.dumps({"agents": rows, "has_more": False}).encode()
    standin.listing = lambda handler: handler.reply(200, body)
    for agent_id in ("named", "unnamed", "last"):
        standin.set(agent_id, link(canary_token(agent_id), time.time() + 30 * 86400))
    path = write_config(
        [],
        discover={"archived": False},  # one listing: the stand-in answers any with these rows
        poll={"interval": "1h", "jitter": 0, "discovery_interval": "1h"},
    )
    started = time.time()
    daemon = start_daemon(path)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30)
    assert daemon.value("elevenlabs_link_monitor_agents") == 3
    assert daemon.value("elevenlabs_link_monitor_discovered_agents", workspace="default") == 3
    for agent_id in ("named", "unnamed", "last"):
        assert daemon.state_of(agent_id) == "ok", agent_id
    assert 'agent_id="unnamed",agent_name=""' in daemon.metrics_text()
    # One line per listing, not one per row (tests/unit/test_listing_rows.py).
    [skipped] = daemon.events("discovery_rows_skipped")
    assert (skipped["workspace"], skipped["count"], skipped["rows"]) == ("default", 3, [2, 3, 4])
    assert skipped["fields"] == {"name": 1, "agent_id": 1, "the row": 1}
    assert daemon.events("discovery_failed") == []
    assert secret.encode() not in daemon.output()
    listed_at = daemon.value(
        "elevenlabs_link_monitor_discovery_last_success_timestamp_seconds", workspace="default"
    )
    assert listed_at is not None
    assert started <= listed_at <= time.time()  # the time of this listing, not of another


def test_a_failing_listing_never_sets_the_last_success_time(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """The alert on discovery failing reads this gauge: absent until a listing succeeds."""
    standin.listing = status(403, {"detail": {"status": "missing_permissions", "message": "x"}})
    path = write_config(
        [], discover=True, poll={"interval": "1h", "jitter": 0, "discovery_interval": "1s"}
    )
    daemon = start_daemon(path)
    daemon.wait_for("discovery_failed", reason="unauthorized")
    wait_until(
        lambda: daemon.value(
            "elevenlabs_link_monitor_discovery_errors_total",
            workspace="default",
            reason="unauthorized",
        )
    )
    gauge = "elevenlabs_link_monitor_discovery_last_success_timestamp_seconds"
    assert daemon.value(gauge, workspace="default") is None
    standin.listing = [("now_listed", "", False)]
    wait_until(lambda: daemon.value(gauge, workspace="default") is not None)


def test_a_listing_past_its_bounds_fails_and_the_last_good_list_is_kept(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """A cursor that repeats used to be followed for 10,000 pages, piling up duplicates,
    and a listing had no size limit (300,000 agents took 317 MiB). Now a repeated cursor
    and more than 50,000 agents are each an `invalid_response`; the last good list stays."""
    good = [("g1", "one", False), ("g2", "two", False), ("g3", "three", False)]
    standin.listing = good
    for agent_id, _, _ in good:
        standin.set(agent_id, link(canary_token(agent_id), time.time() + 30 * 86400))
    path = write_config(
        [],
        discover={"archived": False},  # runs of the live listing alone, counted below
        # A listing's deadline is 0.9 of this: the 501 pages below take about 2 s here.
        poll={"interval": "1h", "jitter": 0, "discovery_interval": "8s"},
        elevenlabs={"max_requests_per_second": 1000, "max_concurrency": 16},
    )
    daemon = start_daemon(path)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30)
    assert daemon.value("elevenlabs_link_monitor_agents") == 3

    def listing_runs(since: int) -> list[int]:
        """Requests per listing run (a run starts with the request without a cursor)."""
        with standin.lock:
            paths = [r.path for r in standin.requests[since:]]
        runs: list[int] = []
        for path in paths:
            if path.startswith("/v1/convai/agents?"):
                if "cursor=" not in path or not runs:
                    runs.append(0)
                runs[-1] += 1
        return runs

    # Every page says "more, at cursor c", with new ids each time.
    pages = iter(range(1_000_000))

    def repeating(handler: Any) -> None:
        n = next(pages)
        body = {"agents": [{"agent_id": f"r{n}_{i}"} for i in range(100)]}
        handler.reply(200, json.dumps(body | {"has_more": True, "next_cursor": "c"}).encode())

    before = len(standin.requests)
    standin.listing = repeating
    line = daemon.wait_for("discovery_failed", reason="invalid_response", timeout=60)
    assert line["detail"] == "the agent listing repeats a cursor"
    # The first page, then the cursor once: its second appearance ends the listing.
    assert max(listing_runs(before)) == 2
    assert daemon.value("elevenlabs_link_monitor_agents") == 3

    # One agent more than the bound, in 501 pages of 100.
    standin.listing = [(f"m{i:05d}", "", False) for i in range(50_001)]
    daemon.wait_for(
        "discovery_failed", detail="the agent listing has more than 50,000 agents", timeout=120
    )
    assert daemon.value("elevenlabs_link_monitor_agents") == 3
    assert daemon.value("elevenlabs_link_monitor_discovered_agents", workspace="default") == 3
    for agent_id, _, _ in good:
        assert daemon.state_of(agent_id) == "ok", agent_id
