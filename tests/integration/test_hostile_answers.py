"""Hostile answers against the real daemon: one agent's answer blinds no other agent, no
endpoint and not `check`; an unsafe discovered id is never requested."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cli import Done, run_cli
from tests.conftest import (
    CANARY_KEY,
    ConfigWriter,
    canary_token,
    running_daemon,
    write_config_file,
)
from tests.daemon import Daemon, wait_until
from tests.standin import Answer, StandIn, encoded, link, zeros_gzipped

DAY = 86400.0
OUT_OF_RANGE = (
    "the answer does not fit the schema at token.expiration_time_unix_secs: "
    "not a Unix time in seconds between 2000 and 2200"
)
COMPRESSED = "the answer is compressed (Content-Encoding), though only identity was accepted"
StartDaemon = Callable[..., Daemon]


def _link(agent_id: str, expiry: Any, **extra: Any) -> bytes:
    token = {"conversation_token": canary_token("x"), "expiration_time_unix_secs": expiry}
    return json.dumps({"agent_id": agent_id, "token": token | extra}).encode()


def _thirty_days() -> int:
    return int(time.time() + 30 * DAY)


# Each hostile answer is one agent's: (its id, its body given its id, Content-Encoding, detail).
HOSTILE: list[tuple[str, Callable[[str], bytes], str | None, str]] = [
    ("milliseconds", lambda a: _link(a, _thirty_days() * 1000), None, OUT_OF_RANGE),
    ("huge", lambda a: _link(a, 10**18), None, OUT_OF_RANGE),
    (
        "bool",
        lambda a: _link(a, True),
        None,
        "the answer does not fit the schema at token.expiration_time_unix_secs",
    ),
    (
        "string",
        lambda a: _link(a, str(_thirty_days())),
        None,
        "the answer does not fit the schema at token.expiration_time_unix_secs",
    ),
    (
        "other_agent",
        lambda _: _link("someone_else", _thirty_days()),
        None,
        "the answer does not fit the schema at agent_id: not the agent asked for",
    ),
    ("bomb2", lambda _: zeros_gzipped(64 * 1024 * 1024, 2), "gzip, gzip", COMPRESSED),
    ("bomb1", lambda _: zeros_gzipped(64 * 1024 * 1024, 1), "gzip", COMPRESSED),
    ("unknown", lambda _: b"\x00" * 100, "x-unknown", COMPRESSED),
]


def _answer(payload: bytes, coding: str | None) -> Answer:
    if coding is None:
        return lambda handler: handler.reply(200, payload)
    return encoded(200, payload, coding)


@pytest.fixture(scope="module")
def hostile(
    module_standin: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Daemon, Done]]:
    """One daemon watching an agent per hostile answer and a good one beside them; and what
    `check` said of the same agents."""
    for name, body, coding, _ in HOSTILE:
        module_standin.set(f"bad_{name}", _answer(body(f"bad_{name}"), coding))
    module_standin.set("good", link(canary_token("g"), time.time() + 30 * DAY))
    agents = [f"bad_{name}" for name, _, _, _ in HOSTILE]
    path = tmp_path_factory.mktemp("hostile") / "config.yaml"
    config = write_config_file(path, module_standin.url, [*agents, "good"])
    with running_daemon(config) as daemon:
        checked = run_cli("check", "--config", str(config), "--output", "json", key=CANARY_KEY)
        yield daemon, checked


@pytest.mark.parametrize(
    ("name", "detail"),
    [(name, detail) for name, _, _, detail in HOSTILE],
    ids=[name for name, _, _, _ in HOSTILE],
)
def test_a_hostile_answer_blinds_nothing_else(
    hostile: tuple[Daemon, Done], name: str, detail: str
) -> None:
    daemon, checked = hostile
    agent = f"bad_{name}"
    failed = daemon.wait_for("poll_failed", agent_id=agent)
    assert (failed["reason"], failed["detail"]) == ("invalid_response", detail)
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert daemon.state_of(agent) == "unknown"
    for path in ("/", "/api/v1/agents", "/api/v1/status", "/metrics", "/healthz", "/readyz"):
        assert daemon.get(path)[0] == 200, path
    assert not daemon.events("scheduler_problem")
    assert not daemon.events("poll_crashed")
    assert checked.returncode == 3, checked.stderr  # the bad agents could not be polled: unknown
    rows = {r["agent_id"]: r for r in json.loads(checked.stdout)["agents"]}
    assert (rows[agent]["reason"], rows[agent]["detail"]) == ("invalid_response", detail)
    assert rows["good"]["state"] == "ok"
    assert "Traceback" not in checked.stderr


def test_an_unsafe_discovered_id_is_never_requested(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.listing = [
        ("good_1", "one", False),
        ("..", "climbs", False),
        ("../../v1/user", "climbs further", False),
        ("a/b", "two segments", False),
        ("x" * 300, "too long", False),
    ]
    standin.set("good_1", link(canary_token("d"), None))
    daemon = start_daemon(write_config([], discover=True))
    wait_until(lambda: daemon.state_of("good_1") == "ok")
    skipped = daemon.events("discovered_agent_skipped")
    assert [(s["agent_id"], s["agent_id_cut"]) for s in skipped] == [
        ("..", False),
        ("../../v1/user", False),
        ("a/b", False),
        ("x" * 64, True),
    ]
    with standin.lock:
        paths = {r.path.split("?")[0] for r in standin.requests}
    assert paths == {"/v1/convai/agents", "/v1/convai/agents/good_1/link"}
    watched = {dict(k)["agent_id"] for k in daemon.samples("elevenlabs_agent_link_state")}
    assert watched == {"good_1"}
