"""`check`, `validate-config` and `run`'s refusals: one-shot commands and their exit statuses,
in-process (`monitor.cli.main`; tests/integration/test_cli.py runs the real console script)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from monitor.cli import exit_status
from monitor.evaluate import State
from tests.cli import Done, run_cli
from tests.conftest import CANARY_KEY, ConfigWriter, canary_token, config_data
from tests.standin import StandIn, link

DAY = 86400


def run(*args: str, key: str | None = CANARY_KEY) -> Done:
    return run_cli(*args, key=key)


@pytest.mark.parametrize(
    ("states", "code"),
    [
        ([State.OK, State.OK], 0),
        ([State.OK, State.WARNING], 1),
        ([State.WARNING, State.UNKNOWN], 3),
        ([State.UNKNOWN, State.CRITICAL], 2),
        ([State.EXPIRED], 2),
        ([State.MISSING, State.OK], 2),
        ([State.NOT_FOUND], 2),
        ([], 0),
    ],
)
def test_the_worst_agent_decides_the_exit_status(states: list[State], code: int) -> None:
    assert exit_status(states) == code


@pytest.mark.parametrize(
    ("expires_in", "code", "state"),
    [(30 * DAY, 0, "ok"), (3 * DAY, 1, "warning"), (3600, 2, "critical"), (-60, 2, "expired")],
)
def test_check_exits_by_state(
    standin: StandIn, write_config: ConfigWriter, expires_in: float, code: int, state: str
) -> None:
    standin.set("bot", link(canary_token("c"), time.time() + expires_in))
    done = run("check", "--config", str(write_config(["bot"])), "--output", "json")
    assert done.returncode == code, done.stderr
    report = json.loads(done.stdout)
    assert report["version"] == 1
    [row] = report["agents"]
    assert row["state"] == state
    assert row["agent_id"] == "bot"
    assert row["agent_name"] == "bot-name"
    assert row["poll_success"] is True


def test_check_with_a_missing_link_exits_2(standin: StandIn, write_config: ConfigWriter) -> None:
    standin.set("bot", link(None))
    done = run("check", "--config", str(write_config(["bot"])))
    assert done.returncode == 2
    assert "missing" in done.stdout


def test_check_without_a_key_names_where_it_looked(write_config: ConfigWriter) -> None:
    done = run("check", "--config", str(write_config(["bot"])), key=None)
    assert done.returncode == 3  # a config error is UNKNOWN for `check`
    assert done.stderr == (
        "error: elevenlabs.api_key_env: the environment variable ELEVENLABS_API_KEY "
        "that should hold the API key is not set or empty\n"
    )


def test_validate_config_touches_no_network_and_needs_no_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    # An address that would hang or fail if anything tried to reach it.
    config.write_text("elevenlabs:\n  base_url: http://192.0.2.1\nagents:\n  - id: a\n")
    done = run("validate-config", "--config", str(config), key=None)
    assert done.returncode == 0
    assert done.stdout == f"{config}: valid (1 workspace(s), 1 configured agent(s))\n"


def test_validate_config_prints_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "agents:\n  - id: a\n    nam: typo\npoll:\n  interval: soon\nlogging:\n  level: loud\n"
    )
    done = run("validate-config", "--config", str(config))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {config}:3: agents[0].nam: unknown key (check the spelling; unknown keys are errors)",
        f"error: {config}:5: poll.interval: invalid duration 'soon': use seconds or a string "
        "such as 30s, 5m, 1h, 7d, 2w",
        f"error: {config}:7: logging.level: Input should be 'debug', 'info', 'warning' or 'error'",
    ]


# What an agent's name may hold to forge rows or drive the terminal: an escape sequence that
# retitles the window and clears the screen, a carriage return, a newline and a fake row, a
# C1 control (CSI), a bidirectional override.
HOSTILE_NAME = "x\x1b]0;pwned\x07\x1b[2J\rover\n|fake  agent_zz  ok\x9b31m\u202eevil\\x1b"


def test_check_table_escapes_control_characters_in_names(standin: StandIn, tmp_path: Path) -> None:
    standin.listing = [("a1", HOSTILE_NAME, False)]
    standin.set("a1", link(canary_token("e"), time.time() + 30 * DAY))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(standin.url, [], discover=True)))
    done = run("check", "--config", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2  # the header and one row: no forged row
    row = lines[1]
    assert not [c for c in row if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\u202e"]
    assert (
        "x\\x1b]0;pwned\\x07\\x1b[2J\\rover\\n|fake  agent_zz  ok\\x9b31m\\u202eevil\\\\x1b" in row
    )
    # JSON keeps the name as it is (JSON escapes it).
    done = run("check", "--config", str(path), "--output", "json")
    assert json.loads(done.stdout)["agents"][0]["agent_name"] == HOSTILE_NAME


def test_a_missing_key_file_stops_start_up_naming_it(
    tmp_path: Path, write_config: ConfigWriter
) -> None:
    missing = tmp_path / "nope"
    path = write_config(["bot"], elevenlabs={"api_key_file": str(missing)})
    done = run_cli("run", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: elevenlabs.api_key_file: cannot read the API key from {missing}: "
        "No such file or directory\n"
    )


def test_check_keeps_the_rate_limit_too(standin: StandIn, write_config: ConfigWriter) -> None:
    agents = [f"c{i}" for i in range(12)]
    for agent in agents:
        standin.set(agent, link(canary_token(agent), None))
    path = write_config(agents, elevenlabs={"max_requests_per_second": 4, "max_concurrency": 2})
    done = run("check", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert standin.count() == 12 + 2  # and the usage listings: live, archived
    assert standin.max_per_window(1.0) <= 4
    assert standin.max_in_flight <= 2
