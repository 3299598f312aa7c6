"""The API key and every conversation token are credentials: they never leave the daemon."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, run_monitor, wait_until
from tests.standin import StandIn, link, raw, status

DAY = 86400
SECRETS = [CANARY_KEY.encode(), b"tok_canary_"]


def assert_clean(where: str, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode()
    for secret in SECRETS:
        assert secret not in data, f"a secret ({secret[:8]!r}...) leaked into {where}"


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

    check = run_monitor(
        "check", "--config", str(write_config(agents)), "--output", "json", key=CANARY_KEY
    )
    assert_clean("check", check.stdout + check.stderr)
    table = run_monitor("check", "--config", str(write_config(agents)), key=CANARY_KEY)
    assert_clean("check's table", table.stdout + table.stderr)

    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY + "\n")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        f"elevenlabs:\n  api_key_file: {key_file}\n  max_retries: many\nagents:\n  - id: a\n"
    )
    validate = run_monitor("validate-config", "--config", str(invalid), key=CANARY_KEY)
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
