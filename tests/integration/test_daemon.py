"""The real daemon process against a real HTTP stand-in for the API on 127.0.0.1."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, hang, link, raw, status

DAY = 86400

StartDaemon = Callable[..., Daemon]


def every_state(standin: StandIn) -> list[str]:
    now = time.time()
    standin.set("a_ok", link(canary_token("ok"), now + 30 * DAY))
    standin.set("a_no_expiry", link(canary_token("noexp"), None))
    standin.set("a_warning", link(canary_token("warn"), now + 3 * DAY))
    standin.set("a_critical", link(canary_token("crit"), now + 3600))
    standin.set("a_expired", link(canary_token("exp"), now - 3600))
    standin.set("a_missing", link(None))
    standin.set("a_unknown", status(500, {"detail": {"status": "internal"}}))
    # a_not_found has no answer: the stand-in says 404 agent_not_found.
    return [
        "a_ok",
        "a_no_expiry",
        "a_warning",
        "a_critical",
        "a_expired",
        "a_missing",
        "a_not_found",
        "a_unknown",
    ]


def test_every_state_reaches_metrics_and_the_alert_log(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(write_config(every_state(standin)))
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    expected = {
        "a_ok": "ok",
        "a_no_expiry": "ok",
        "a_warning": "warning",
        "a_critical": "critical",
        "a_expired": "expired",
        "a_missing": "missing",
        "a_not_found": "not_found",
        "a_unknown": "unknown",
    }
    assert {a: daemon.state_of(a) for a in expected} == expected
    # Every state of the table is present for every agent, exactly one of them set.
    states = daemon.samples("elevenlabs_agent_link_state")
    assert len(states) == 8 * 7
    assert daemon.value("elevenlabs_agent_link_token_missing", agent_id="a_missing") == 1
    assert daemon.value("elevenlabs_agent_link_token_missing", agent_id="a_ok") == 0
    assert (
        daemon.value("elevenlabs_agent_link_expiry_timestamp_seconds", agent_id="a_no_expiry")
        is None
    )
    expiry = daemon.value("elevenlabs_agent_link_expiry_timestamp_seconds", agent_id="a_ok")
    assert expiry is not None
    assert expiry > time.time()
    assert daemon.value("elevenlabs_agent_link_poll_success", agent_id="a_unknown") == 0
    assert daemon.value("elevenlabs_agent_link_poll_success", agent_id="a_ok") == 1
    assert (
        daemon.value(
            "elevenlabs_agent_link_poll_errors_total", agent_id="a_not_found", reason="not_found"
        )
        == 1
    )
    assert (
        daemon.value(
            "elevenlabs_agent_link_poll_errors_total", agent_id="a_unknown", reason="server_error"
        )
        == 1
    )
    assert daemon.value("elevenlabs_link_monitor_agents") == 8
    assert daemon.value("elevenlabs_link_monitor_build_info", version="0.1.0") == 1
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 1
    alerted = {(x["agent_id"], x["state"], x["level"]) for x in daemon.events("link_alert")}
    assert alerted == {
        ("a_warning", "warning", "warning"),
        ("a_critical", "critical", "error"),
        ("a_expired", "expired", "error"),
        ("a_missing", "missing", "error"),
        ("a_not_found", "not_found", "error"),
    }
    failed = daemon.wait_for("poll_failed", agent_id="a_unknown")
    assert failed["reason"] == "server_error"
    assert {"timestamp", "level", "event"} <= failed.keys()
    assert failed["timestamp"].endswith("Z") or failed["timestamp"].endswith("+00:00")
    # The User-Agent names the monitor and its version.
    assert standin.requests[0].headers["user-agent"].startswith("elevenlabs-link-monitor/0.1.0")
    assert daemon.stop() == 0


def test_readyz_waits_for_the_first_poll_of_every_agent(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("fast", link(canary_token("fast"), None))
    standin.set("slow", hang(30, link(canary_token("slow"), None)))
    daemon = start_daemon(write_config(["fast", "slow"], elevenlabs={"timeout": "30s"}))
    wait_until(lambda: daemon.state_of("fast") == "ok", what="the fast agent")
    assert daemon.get("/readyz")[0] == 503
    assert daemon.get("/healthz")[0] == 200
    standin._server.release.set()  # type: ignore[attr-defined]
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    assert daemon.get("/nope")[0] == 404


FAILURES: list[tuple[str, Callable[..., None], str]] = [
    ("f_not_found", status(404, {"detail": {"status": "document_not_found"}}), "not_found"),
    ("f_server", status(500), "server_error"),
    ("f_not_json", raw(200, b"{not json"), "invalid_response"),
    ("f_schema", raw(200, b'{"token": {"conversation_token": 5}}'), "invalid_response"),
    (
        "f_429",
        status(429, {"detail": {"status": "rate_limit_exceeded"}}, {"Retry-After": "1"}),
        "rate_limited",
    ),
    ("f_scope", status(401, {"detail": {"status": "missing_permissions"}}), "unauthorized"),
    (
        "f_422",
        status(422, {"detail": [{"loc": ["path"], "msg": "bad", "type": "value_error"}]}),
        "client_error",
    ),
    ("f_hang", hang(5), "timeout"),
]


def test_failures_are_classified(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    """One daemon, one agent per kind of failure, and a good one beside them."""
    for agent, answer, _ in FAILURES:
        standin.set(agent, answer)
    standin.set("good", link(canary_token("good"), None))
    agents = [agent for agent, _, _ in FAILURES]
    # 2 s: short enough for f_hang (5 s) to time out soon, long enough that a quick answer on
    # a loaded machine (two test workers, the daemon's listings beside its polls) never does.
    daemon = start_daemon(write_config([*agents, "good"], elevenlabs={"timeout": "2s"}))
    for agent, _, reason in FAILURES:
        failed = daemon.wait_for("poll_failed", agent_id=agent)
        assert failed["reason"] == reason, agent
        wait_until(
            lambda a=agent, r=reason: (  # type: ignore[misc]
                daemon.value("elevenlabs_agent_link_poll_errors_total", agent_id=a, reason=r) == 1
            )
        )
    # The other agent is unaffected.
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert daemon.proc.poll() is None


def test_sigterm_stops_cleanly_with_a_request_in_flight(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("bot", hang(60))
    daemon = start_daemon(write_config(["bot"], elevenlabs={"timeout": "60s"}))
    wait_until(lambda: standin.count("bot") == 1)
    # The request has a minute to go: SIGTERM ends the daemon without waiting for it, within
    # the documented 5 s (stop() fails the test if the process is still running by then).
    assert daemon.stop(timeout=5) == 0
    assert daemon.events("monitor_stopped")
    assert not daemon.events("poll_failed")  # the in-flight poll was dropped, not awaited


def test_sigint_stops_cleanly(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("bot", link(canary_token("i"), None))
    daemon = start_daemon(write_config(["bot"]))
    daemon.signal(signal.SIGINT)
    assert daemon.proc.wait(10) == 0


def test_reload_adds_and_removes_agents_and_keeps_a_bad_config_out(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    for agent in ("kept", "removed", "added"):
        standin.set(agent, link(canary_token(agent), None))
    path = write_config(["kept", "removed"])
    daemon = start_daemon(path)
    wait_until(lambda: daemon.state_of("removed") == "ok")
    polls_of_kept = standin.count("kept")
    write_config(["kept", "added"], path=path)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reloaded")
    wait_until(lambda: daemon.state_of("added") == "ok", what="the added agent")
    assert daemon.state_of("removed") is None
    assert "removed" not in daemon.metrics_text()
    # What was known of the unchanged agent is kept, not polled again.
    assert daemon.state_of("kept") == "ok"
    assert standin.count("kept") == polls_of_kept
    path.write_text("poll:\n  interval: nonsense\n")
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_for("config_reload_failed")
    assert any("poll.interval" in p for p in failed["problems"])
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 0
    assert daemon.state_of("added") == "ok"
    # A config with many problems is logged in a line of bounded size.
    write_config([f"bad/{i}" for i in range(30)], path=path)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.events("config_reload_failed")) == 2)
    failed = daemon.events("config_reload_failed")[-1]
    assert (len(failed["problems"]), failed["problems_left_out"]) == (20, 10)
    write_config(["kept"], path=path)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 1)
    wait_until(lambda: daemon.state_of("added") is None)


def test_a_changed_config_file_is_reloaded_without_a_signal(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("one", link(canary_token("one"), None))
    standin.set("two", link(canary_token("two"), None))
    path = write_config(["one"])
    daemon = start_daemon(path)
    write_config(["one", "two"], path=path)
    daemon.wait_for("config_reloaded", cause="file changed")
    wait_until(lambda: daemon.state_of("two") == "ok")


def _epoch(timestamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_bad_config_stops_run_before_anything_starts(tmp_path: object) -> None:
    from pathlib import Path

    from tests.daemon import run_monitor

    config = Path(str(tmp_path)) / "bad.yaml"
    config.write_text("agents:\n  - id: a\nthresholds:\n  warning: 1h\n  critical: 2h\n")
    done = run_monitor("run", "--config", str(config), key=CANARY_KEY)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"error: {config}:3: thresholds: warning (1h) must be greater than critical (2h)\n"
    )
