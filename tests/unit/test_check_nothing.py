"""`check` with nothing to check is UNKNOWN (3), never OK (issue 21, finding 2).

A discovering config whose listing answers zero agents, with no configured agent, used to
print an empty table and exit 0: OK, having checked nothing. Now it exits 3 with one line on
stderr that says why, naming the workspaces (and the shard, with --shard). In-process, against
the loopback stand-in API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import cli
from monitor.model import AgentKey
from monitor.runtime.targets import Shard
from tests.cli import logging_restored
from tests.conftest import CANARY_KEY, canary_token, config_data
from tests.standin import StandIn, link, status


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`check` points logging at the (captured) stderr; leave it as it was for later tests."""
    with logging_restored():
        yield


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", CANARY_KEY)
    monkeypatch.delenv("MONITOR_SHARD", raising=False)


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def workspace(name: str, base_url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": base_url,
        "api_key_env": "ELEVENLABS_API_KEY",
        "timeout": "2s",
        "max_retries": 0,
        **fields,
    }


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = cli.main(["check", *args])
    out, err = capsys.readouterr()
    assert CANARY_KEY not in out + err
    assert "Traceback" not in err
    return code, out, err.splitlines()


@pytest.mark.parametrize("output", ["table", "json"])
def test_an_empty_listing_and_no_configured_agent_is_unknown(
    output: str, standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, config_data(standin.url, [], discover=True))
    code, out, err = check(capsys, "--config", path, "--output", output)
    assert code == 3
    assert err == [
        "error: nothing to check: no configured agents and the listing of workspace "
        "'default' returned none"
    ]
    assert standin.count() == 2  # the listing was asked, once, and the archived one
    if output == "json":  # the (empty) report is still the report
        assert yaml.safe_load(out) == {"version": 1, "agents": []}


def test_every_empty_workspace_is_named(
    standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "workspaces": [
            workspace("prod", standin.url, discover=True),
            workspace("eu", standin.url, discover=True),
        ],
        "poll": {"interval": "1h", "jitter": 0},
        "server": {"host": "127.0.0.1", "port": 0},
    }
    code, _, err = check(capsys, "--config", write(tmp_path, data))
    assert code == 3
    assert err == [
        "error: nothing to check: no configured agents and the listings of workspaces "
        "'eu', 'prod' returned none"
    ]


def test_a_shard_that_holds_none_of_the_agents_is_unknown(
    standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two configured agents that both hash into shard 0 of 2: shard 1 has nothing to check.
    shard = Shard(1, 2)
    others = [
        a for a in (f"agent_{n}" for n in range(40)) if not shard.owns(AgentKey("default", a))
    ]
    path = write(tmp_path, config_data(standin.url, others[:2], discover=True))
    code, _, err = check(capsys, "--config", path, "--shard", "1/2")
    assert code == 3
    assert err == [
        "error: nothing to check: shard 1/2 holds none of the agents configured or listed "
        "in workspace 'default'"
    ]
    assert standin.count() == 2  # the listings only (live, archived): no agent polled


def test_a_failed_listing_with_nothing_else_is_unknown_and_says_so(
    standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.listing = status(500)
    path = write(tmp_path, config_data(standin.url, [], discover=True))
    code, _, err = check(capsys, "--config", path)
    assert code == 3
    assert err[-1] == (
        "error: nothing to check: no configured agents and the listing of workspace "
        "'default' failed"
    )
    assert any('"discovery_failed"' in line for line in err[:-1]), err


def test_an_agent_to_check_is_still_judged_by_its_state(
    standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: one listed agent with a good link is OK, with nothing on stderr."""
    standin.listing = [("a1", "bot", False)]
    standin.set("a1", link(canary_token("n"), None))
    path = write(tmp_path, config_data(standin.url, [], discover=True))
    code, _, err = check(capsys, "--config", path)
    assert (code, err) == (0, [])
