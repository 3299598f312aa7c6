"""Usage and exposure (issue 19) end to end: the real daemon against the stand-in API, whose
listing rows carry `last_call_time_unix_secs` and `archived` and which honours the listing's
`archived` parameter as the API does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, run_monitor, wait_until
from tests.standin import StandIn, hang, link, status

StartDaemon = Callable[..., Daemon]
DAY = 86400
LAST_CALL = "elevenlabs_agent_last_call_timestamp_seconds"
ARCHIVED = "elevenlabs_agent_archived"
FAST = {"interval": "1h", "jitter": 0, "discovery_interval": "2s"}


def by_agent(daemon: Daemon, name: str) -> dict[str, float]:
    return {dict(k)["agent_id"]: v for k, v in daemon.samples(name).items()}


def ready(daemon: Daemon) -> None:
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")


def rows(daemon: Daemon) -> dict[str, dict[str, object]]:
    body = json.loads(daemon.get("/api/v1/agents")[1])
    return {row["agent_id"]: row for row in body["agents"]}


def test_usage_series_and_their_absence_for_discovered_and_configured_agents(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    called = int(time.time()) - 3600
    standin.listing = [
        ("conf", "conf-listed", False),
        ("used", "used-bot", False),
        ("never", "never-bot", False),
        ("hostile", "hostile-bot", False),
        ("silent", "silent-bot", False),
    ]
    standin.last_calls = {"conf": called - 60, "used": called, "never": None, "hostile": "1e99"}
    for agent_id, _, _ in standin.listing:
        standin.set(agent_id, link(canary_token(agent_id), time.time() + 30 * DAY))
    daemon = start_daemon(write_config(["conf"], discover=True, poll=FAST))
    ready(daemon)
    wait_until(lambda: by_agent(daemon, LAST_CALL), what="the last call series")
    # Absent when never called (null) or unknown (a string, no field): never a made-up value.
    assert by_agent(daemon, LAST_CALL) == {"conf": called - 60, "used": called}
    assert by_agent(daemon, ARCHIVED) == dict.fromkeys(
        ["conf", "used", "never", "hostile", "silent"], 0.0
    )
    # The hostile row cost nothing: every agent is watched and polled.
    assert daemon.state_of("hostile") == daemon.state_of("silent") == "ok"
    shown = rows(daemon)
    assert [shown[a]["usage"] for a in ("used", "never", "hostile", "silent")] == [
        "called",
        "never",
        "unknown",
        "unknown",
    ]
    assert shown["used"]["last_call_unix"] == called
    assert shown["used"]["archived"] is False
    # ?idle=1 (7 days by default): never called only; unknown is not idle.
    idle = json.loads(daemon.get("/api/v1/agents?idle=1")[1])["agents"]
    assert [row["agent_id"] for row in idle] == ["never"]
    assert daemon.stop() == 0

    # `check` says the same, per agent.
    config = write_config(["conf"], discover=True, poll=FAST)
    done = run_monitor("check", "--config", str(config), "--output", "json", key=CANARY_KEY)
    assert done.returncode == 0, done.stderr
    checked = {row["agent_id"]: row for row in json.loads(done.stdout)["agents"]}
    assert checked["conf"]["usage"] == "called"
    assert checked["never"]["usage"] == "never"
    assert checked["hostile"]["usage"] == "unknown"
    assert {row["archived"] for row in checked.values()} == {False}


def test_a_configured_agent_is_enriched_from_the_listing(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    called = int(time.time()) - 600
    standin.listing = [("conf", "conf-listed", False), ("other", "not-watched", False)]
    standin.last_calls = {"conf": called, "other": called}
    standin.set("conf", link(canary_token("conf"), time.time() + 30 * DAY))
    daemon = start_daemon(write_config(["conf"], poll=FAST))  # discover: false
    ready(daemon)
    wait_until(lambda: by_agent(daemon, LAST_CALL), what="the last call series")
    assert by_agent(daemon, LAST_CALL) == {"conf": called}
    assert by_agent(daemon, ARCHIVED) == {"conf": 0.0}
    # Listed only to learn of its use: the listing adds no agent.
    assert set(by_agent(daemon, "elevenlabs_agent_info")) == {"conf"}
    assert standin.count("other") == 0
    assert daemon.stop() == 0


def test_a_refused_listing_is_said_once_and_the_polls_go_on(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.listing = status(403, {"detail": {"status": "missing_permissions", "message": "no"}})
    standin.set("conf", link(canary_token("conf"), time.time() + 30 * DAY))
    daemon = start_daemon(write_config(["conf"], poll=FAST))
    ready(daemon)
    daemon.wait_for("usage_listing_failed", listing="live")
    # Several discovery intervals later, still one line per listing: said on change only.
    listings = standin.count() - standin.count("conf")
    wait_until(lambda: standin.count() - standin.count("conf") >= listings + 4, what="listings")
    assert len(daemon.events("usage_listing_failed", listing="live")) == 1
    assert len(daemon.events("usage_listing_failed", listing="archived")) == 1
    line = daemon.events("usage_listing_failed", listing="live")[0]
    assert (line["reason"], line["detail"]) == ("unauthorized", "HTTP 403 missing_permissions")
    assert daemon.state_of("conf") == "ok"  # polled all the same
    assert not daemon.events("discovery_failed")  # the workspace is not failing
    assert by_agent(daemon, LAST_CALL) == {}
    assert by_agent(daemon, ARCHIVED) == {}  # no listing said: unknown
    workspace = json.loads(daemon.get("/api/v1/status")[1])["workspaces"][0]
    assert workspace["usage_listings_failing"] == {
        "live": "unauthorized",
        "archived": "unauthorized",
    }
    assert workspace["reachability"] == "ok"
    assert "usage of workspace default" in daemon.get("/")[1]
    assert daemon.stop() == 0


def test_an_archived_agent_with_a_live_token_is_found_within_one_discovery_interval(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.listing = [
        ("live_bot", "support-bot", False),
        ("door", "old-bot", True),  # archived, its link still live: a door nobody closed
        ("expired_door", "older-bot", True),  # archived, expired: no alert, nothing to say
        ("stuck", "stuck-bot", True),  # archived, never answers: readiness never waits
    ]
    standin.set("live_bot", link(canary_token("live"), time.time() + 30 * DAY))
    standin.set("door", link(canary_token("door"), time.time() + 2 * DAY))
    standin.set("expired_door", link(canary_token("gone"), time.time() - DAY))
    standin.set("stuck", hang(60))
    daemon = start_daemon(write_config([], discover=True, poll=FAST))
    ready(daemon)
    live = daemon.wait_for("archived_link_live", agent_id="door", timeout=10)
    assert live["level"] == "warning"
    assert by_agent(daemon, ARCHIVED) == {
        "live_bot": 0.0,
        "door": 1.0,
        "expired_door": 1.0,
        "stuck": 1.0,
    }
    wait_until(lambda: daemon.state_of("expired_door") == "expired", what="the expired door")
    # Nobody should renew those links: no expiry alert, whatever their state.
    assert not daemon.events("link_alert")
    status_body = json.loads(daemon.get("/api/v1/status")[1])
    assert status_body["alerting"] == 0
    assert status_body["archived"] == 3
    archived_rows = json.loads(daemon.get("/api/v1/agents?archived=1")[1])["agents"]
    assert {row["agent_id"] for row in archived_rows} == {"door", "expired_door", "stuck"}

    # Polled at the discovery interval (2 s), not at poll.interval (1 h).
    wait_until(lambda: standin.count("door") >= 3, what="the door polled again")
    assert standin.count("live_bot") == 1
    # The door closes: said once.
    standin.set("door", link(None))
    daemon.wait_for("archived_link_closed", agent_id="door", timeout=10)
    assert len(daemon.events("archived_link_live", agent_id="door")) == 1
    assert not daemon.events("link_alert")
    assert daemon.stop() == 0


def test_discover_archived_false_stops_the_sweep(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.listing = [("live_bot", "support-bot", False), ("door", "old-bot", True)]
    standin.set("live_bot", link(canary_token("live"), time.time() + 30 * DAY))
    standin.set("door", link(canary_token("door"), time.time() + 2 * DAY))
    daemon = start_daemon(write_config([], discover={"archived": False}, poll=FAST))
    ready(daemon)
    wait_until(lambda: len(standin.listing_queries) >= 3, what="a few listings")
    assert {q["archived"][0] for q in standin.listing_queries} == {"false"}
    assert standin.count("door") == 0
    assert set(by_agent(daemon, ARCHIVED)) == {"live_bot"}
    assert not daemon.events("archived_link_live")
    assert daemon.stop() == 0
