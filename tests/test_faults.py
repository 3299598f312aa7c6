"""Faults the daemon must survive: the faulty agent is reported with the right reason, every
other agent is unaffected, the process keeps running and nothing it knew is lost."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, huge, link, reset_midway, status, trickle

pytestmark = pytest.mark.integration
DAY = 86400
StartDaemon = Callable[..., Daemon]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.mark.parametrize(
    ("answer", "reason", "detail"),
    [
        (huge(20 * 1024 * 1024), "invalid_response", "the answer is larger than 256 KiB"),
        (trickle(b'{"agent_id": "bad", "token": null}', 0.2), "timeout", "no answer within 1s"),
        (reset_midway(), "connection", "the connection broke while reading"),
        (status(502), "server_error", "HTTP 502"),
        (status(504), "server_error", "HTTP 504"),
        (status(403, {"detail": {"status": "forbidden"}}), "unauthorized", "HTTP 403 forbidden"),
        (status(429), "rate_limited", "HTTP 429"),
    ],
)
def test_a_faulty_answer_is_classified_and_isolated(
    standin: StandIn,
    write_config: ConfigWriter,
    start_daemon: StartDaemon,
    answer: Callable[..., None],
    reason: str,
    detail: str,
) -> None:
    standin.set("bad", answer)
    standin.set("good", link(canary_token("g"), time.time() + 30 * DAY))
    daemon = start_daemon(write_config(["bad", "good"], elevenlabs={"timeout": "1s"}))
    failed = daemon.wait_for("poll_failed", agent_id="bad")
    assert (failed["reason"], failed["detail"]) == (reason, detail)
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert daemon.state_of("bad") == "unknown"
    assert daemon.get("/healthz")[0] == 200


@pytest.mark.parametrize(
    ("base_url", "detail"),
    [
        (f"http://127.0.0.1:{_closed_port()}", "cannot connect"),
        ("http://no-such-host.invalid", "cannot connect"),
    ],
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
    assert standin.count() == 8 + 4 * 2  # every failing agent retried once
    assert standin.max_per_window(1.0) <= 4
    assert standin.max_in_flight <= 2


def test_a_long_outage_then_recovery_without_pile_up(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("bot", link(None))
    standin.set("other", link(canary_token("o"), None))
    daemon = start_daemon(write_config(["bot", "other"], poll={"interval": "1s", "jitter": 0}))
    daemon.wait_for("link_alert", agent_id="bot", state="missing")
    known = daemon.value("elevenlabs_agent_link_last_success_timestamp_seconds", agent_id="other")
    standin.set("bot", status(503))
    standin.set("other", status(503))
    outage = standin.count()
    wait_until(lambda: len(daemon.events("poll_failed", agent_id="other")) >= 5, timeout=30)
    # A stale answer never looks fresh: success is 0 and the last success stays put...
    assert daemon.value("elevenlabs_agent_link_poll_success", agent_id="other") == 0
    assert (
        daemon.value("elevenlabs_agent_link_last_success_timestamp_seconds", agent_id="other")
        == known
    )
    # ...while what it said keeps being evaluated.
    assert daemon.state_of("bot") == "missing"
    assert daemon.state_of("other") == "ok"
    cycles = len(daemon.events("poll_failed", agent_id="other"))
    back = time.time()
    standin.set("bot", link(canary_token("new"), time.time() + 30 * DAY))
    standin.set("other", link(canary_token("o"), None))
    daemon.wait_for("link_recovered", agent_id="bot")
    # One request per agent per cycle during the outage, and no burst when the API returns.
    assert standin.count() - outage <= 2 * (cycles + 2)
    assert sum(1 for r in standin.requests if r.at >= back) <= 4
    assert daemon.proc.poll() is None


def test_a_cycle_that_cannot_finish_is_cut_and_counted_not_stacked(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    from tests.standin import hang

    standin.set("slow", hang(30))
    standin.set("fast", link(canary_token("f"), None))
    daemon = start_daemon(
        write_config(
            ["slow", "fast"],
            elevenlabs={"timeout": "30s"},
            poll={"interval": "2s", "jitter": 0},
        )
    )
    overrun = daemon.wait_for("cycle_overrun", timeout=10)
    assert overrun["unfinished"] == 1
    wait_until(lambda: daemon.value("elevenlabs_link_monitor_cycles_overrun_total") == 1)
    # The next cycle starts on time instead of waiting behind the hung one.
    wait_until(lambda: len(daemon.events("cycle_overrun")) >= 2, timeout=10)
    assert standin.count("fast") >= 2
    assert not daemon.events("scheduler_problem")


def test_a_rotated_key_file_is_read_again_on_reload(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(CANARY_KEY + "\n")
    standin.set("bot", link(canary_token("k"), None))
    path = write_config(["bot"], elevenlabs={"api_key_file": str(key_file)})
    daemon = start_daemon(path, env={"ELEVENLABS_API_KEY": ""})
    wait_until(lambda: daemon.state_of("bot") == "ok")
    standin.api_key = CANARY_KEY + "_rotated"
    key_file.write_text(standin.api_key)
    daemon.signal(__import__("signal").SIGHUP)
    daemon.wait_for("config_reloaded")
    # A poll with the new key succeeds: force one by a config change that adds an agent.
    standin.set("bot2", link(canary_token("k2"), None))
    write_config(["bot", "bot2"], path=path, elevenlabs={"api_key_file": str(key_file)})
    wait_until(lambda: daemon.state_of("bot2") == "ok", timeout=10)
    assert standin.requests[-1].headers["xi-api-key"] == standin.api_key


def test_a_missing_key_file_stops_start_up_naming_it(
    tmp_path: Path, write_config: ConfigWriter
) -> None:

    from tests.daemon import run_monitor

    missing = tmp_path / "nope"
    path = write_config(["bot"], elevenlabs={"api_key_file": str(missing)})
    done = run_monitor("run", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: elevenlabs.api_key_file: cannot read the API key from {missing}: "
        "No such file or directory\n"
    )


def test_check_keeps_the_rate_limit_too(standin: StandIn, write_config: ConfigWriter) -> None:

    from tests.daemon import run_monitor

    agents = [f"c{i}" for i in range(12)]
    for agent in agents:
        standin.set(agent, link(canary_token(agent), None))
    path = write_config(agents, elevenlabs={"max_requests_per_second": 4, "max_concurrency": 2})
    done = run_monitor("check", "--config", str(path), key=CANARY_KEY)
    assert done.returncode == 0, done.stderr
    assert standin.count() == 12
    assert standin.max_per_window(1.0) <= 4
    assert standin.max_in_flight <= 2


def test_no_pile_up_after_the_process_is_paused(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    import signal

    standin.set("bot", link(canary_token("p"), None))
    daemon = start_daemon(write_config(["bot"], poll={"interval": "1s", "jitter": 0}))
    wait_until(lambda: standin.count("bot") >= 2)
    daemon.signal(signal.SIGSTOP)  # a frozen host, a debugger, a stopped container
    paused = standin.count("bot")
    time.sleep(4)  # the pause itself is the fault under test, not a synchronisation
    resumed = time.time()
    daemon.signal(signal.SIGCONT)
    wait_until(lambda: standin.count("bot") > paused)
    first = min(r.at for r in standin.requests if r.at >= resumed)
    wait_until(lambda: time.time() > first + 0.5)
    # The four missed cycles are coalesced into one run, not fired back to back.
    assert sum(1 for r in standin.requests if first <= r.at < first + 0.5) == 1
    assert daemon.proc.poll() is None
