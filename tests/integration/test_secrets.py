"""The API key and every conversation token are credentials: they never leave the daemon."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.cli import run_cli
from tests.conftest import (
    CANARY_KEY,
    KEY_IN_AGENT_PROBLEM,
    ConfigWriter,
    assert_clean,
    canary_token,
)
from tests.daemon import Daemon, run_monitor, wait_until
from tests.standin import StandIn, link, raw, status

DAY = 86400


def test_no_secret_in_any_output(
    standin: StandIn,
    write_config: ConfigWriter,
    start_daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    now = time.time()
    standin.set("ok", link(canary_token("ok"), now + 30 * DAY))
    standin.set("warn", link(canary_token("warn"), now + DAY * 3))
    standin.set("rotating", link(canary_token("r1"), now + 3600))
    standin.set("bad_json", raw(200, b'{"agent_id": "bad_json", "token": {"conversation_token": '))
    standin.set(
        "unauth",
        status(
            401, {"detail": {"status": "invalid_api_key", "message": f"key {CANARY_KEY} is wrong"}}
        ),
    )
    standin.set(
        "schema",
        raw(
            200,
            b'{"agent_id": 1, "token": {"conversation_token": '
            b'"tok_canary_schema", "expiration_time_unix_secs": "x"}}',
        ),
    )
    agents = ["ok", "warn", "rotating", "bad_json", "unauth", "schema", "gone"]
    path = write_config(agents, poll={"interval": "1s", "jitter": 0}, logging={"level": "debug"})
    daemon = start_daemon(path)
    wait_until(lambda: daemon.get("/readyz")[0] == 200)
    standin.set("rotating", link(canary_token("r2"), now + 7200))
    wait_until(
        lambda: daemon.value("elevenlabs_agent_link_token_rotations_total", agent_id="rotating")
    )
    scrapes = daemon.metrics_text().encode()
    scrapes += daemon.get("/")[1].encode() + daemon.get("/readyz")[1].encode()
    # A failing reload.
    path.write_text(path.read_text() + "bogus: 1\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reload_failed")
    assert daemon.stop() == 0
    assert_clean("the daemon's stdout/stderr", daemon.output())
    assert_clean("/metrics", scrapes)

    check = run_cli(
        "check", "--config", str(write_config(agents)), "--output", "json", key=CANARY_KEY
    )
    assert_clean("check", check.stdout + check.stderr)
    table = run_cli("check", "--config", str(write_config(agents)), key=CANARY_KEY)
    assert_clean("check's table", table.stdout + table.stderr)

    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY + "\n")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        f"elevenlabs:\n  api_key_file: {key_file}\n  max_retries: many\nagents:\n  - id: a\n"
    )
    validate = run_cli("validate-config", "--config", str(invalid), key=CANARY_KEY)
    assert validate.returncode == 2
    assert_clean("validate-config", validate.stdout + validate.stderr)


def test_a_crash_path_does_not_leak_the_key(tmp_path: Path) -> None:
    """A port already taken ends start-up with an error, not a traceback with headers."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(
            f"agents:\n  - id: a\nserver:\n  host: 127.0.0.1\n  port: {port}\n"
            "elevenlabs:\n  base_url: http://127.0.0.1:9\n"
        )
        done = run_monitor("run", "--config", str(config), key=CANARY_KEY)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert_clean("a failed start", done.stdout + done.stderr)


# A key shaped like an error code (short lowercase words, no digits): the error-code
# reader takes it for one, so only redaction of what the upstream says keeps it out.
PLAIN_KEY = "canary_key_without_prefix"


def test_an_upstream_that_echoes_the_key_reaches_no_output(
    tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    api = StandIn(PLAIN_KEY)
    try:
        api.set("echo", status(429, {"detail": {"status": PLAIN_KEY, "message": PLAIN_KEY}}))
        api.set("named", link(canary_token("n"), None))
        api.listing = [("named", f"bot {PLAIN_KEY}", False)]
        config = tmp_path / "config.yaml"
        config.write_text(
            f"elevenlabs:\n  base_url: {api.url}\n  max_retries: 0\n  timeout: 2s\n"
            "agents:\n  - id: echo\ndiscover: true\n"
            "server:\n  host: 127.0.0.1\n  port: 0\n"
        )
        daemon = start_daemon(config, env={"ELEVENLABS_API_KEY": PLAIN_KEY})
        failed = daemon.wait_for("poll_failed", agent_id="echo")
        assert failed["detail"] == "HTTP 429 [REDACTED]"
        wait_until(lambda: daemon.state_of("named") == "ok")
        outputs = {path: daemon.get(path)[1] for path in ("/", "/api/v1/agents", "/api/v1/status")}
        outputs["/metrics"] = daemon.metrics_text()
        assert daemon.stop() == 0
        outputs["the daemon's output"] = daemon.output().decode()
        for form in ("json", "table"):
            checked = run_cli("check", "--config", str(config), "--output", form, key=PLAIN_KEY)
            assert checked.returncode == 3, checked.stderr
            outputs[f"check --output {form}"] = checked.stdout + checked.stderr
        for where, text in outputs.items():
            assert PLAIN_KEY not in text, f"the key leaked into {where}"
        assert "HTTP 429 [REDACTED]" in outputs["/api/v1/agents"]
    finally:
        api.close()


def _key_file_config(standin: StandIn, tmp_path: Path) -> tuple[Path, str]:
    """A key file holding the canary key, and a config's head (all but `agents:`) using it,
    polling every second an agent `bot` whose link never expires."""
    standin.set("bot", link(canary_token("k"), None))
    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY + "\n")
    head = (
        f"elevenlabs:\n  api_key_file: {key_file}\n  base_url: {standin.url}\n"
        "  max_retries: 0\npoll:\n  interval: 1s\n  jitter: 0\n"
        "server:\n  host: 127.0.0.1\n  port: 0\n"
    )
    return key_file, head


def test_a_key_file_broken_while_running_fails_the_reload_and_keeps_the_key(
    standin: StandIn, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    key_file, head = _key_file_config(standin, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(head + "agents:\n  - id: bot\n")
    daemon = start_daemon(config)
    wait_until(lambda: daemon.state_of("bot") == "ok")
    key_file.write_text(CANARY_KEY + "\nsecond line\n")
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_for("config_reload_failed")
    assert failed["problems"] == [
        f"elevenlabs.api_key_file: {key_file} must hold exactly one line, "
        "the API key (printable ASCII)"
    ]
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 0
    polls = standin.count("bot")
    wait_until(lambda: standin.count("bot") > polls + 1, what="polls with the running key")
    assert not daemon.events("poll_failed")
    assert not daemon.events("poll_crashed")
    assert daemon.stop() == 0
    assert_clean("the daemon's output", daemon.output())


def test_an_agent_holding_the_key_fails_the_reload_and_keeps_running(
    standin: StandIn, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    _, head = _key_file_config(standin, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(head + "agents:\n  - id: bot\n")
    daemon = start_daemon(config)
    wait_until(lambda: daemon.state_of("bot") == "ok")
    config.write_text(head + f"agents:\n  - id: bot\n  - {{id: bot2, name: x{CANARY_KEY}}}\n")
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_for("config_reload_failed")
    assert failed["problems"] == [f"workspace 'default': agents[1]: {KEY_IN_AGENT_PROBLEM}"]
    assert daemon.value("elevenlabs_link_monitor_config_last_reload_successful") == 0
    polls = standin.count("bot")
    wait_until(lambda: standin.count("bot") > polls + 1, what="polls with the running config")
    assert daemon.state_of("bot2") is None
    assert daemon.stop() == 0
    assert_clean("the daemon's output", daemon.output())
