"""Hostile answers against the real daemon: one agent's answer blinds no other agent, no
endpoint and not `check`; an unsafe discovered id is never requested."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cli import run_cli
from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, encoded, link, zeros_gzipped

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


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "coding", "detail"),
    [
        (lambda: _link("bad", int(time.time() + 30 * DAY) * 1000), None, OUT_OF_RANGE),
        (lambda: _link("bad", 10**18), None, OUT_OF_RANGE),
        (
            lambda: _link("bad", True),
            None,
            "the answer does not fit the schema at token.expiration_time_unix_secs",
        ),
        (
            lambda: _link("bad", str(int(time.time() + 30 * DAY))),
            None,
            "the answer does not fit the schema at token.expiration_time_unix_secs",
        ),
        (
            lambda: _link("someone_else", int(time.time() + 30 * DAY)),
            None,
            "the answer does not fit the schema at agent_id: not the agent asked for",
        ),
        (lambda: zeros_gzipped(64 * 1024 * 1024, 2), "gzip, gzip", COMPRESSED),
        (lambda: zeros_gzipped(64 * 1024 * 1024, 1), "gzip", COMPRESSED),
        (lambda: b"\x00" * 100, "x-unknown", COMPRESSED),
    ],
    ids=["milliseconds", "huge", "bool", "string", "other-agent", "bomb2", "bomb1", "unknown"],
)
def test_a_hostile_answer_blinds_nothing_else(
    standin: StandIn,
    write_config: ConfigWriter,
    start_daemon: StartDaemon,
    body: Callable[[], bytes],
    coding: str | None,
    detail: str,
) -> None:
    payload = body()
    if coding is None:
        standin.set("bad", lambda handler: handler.reply(200, payload))
    else:
        standin.set("bad", encoded(200, payload, coding))
    standin.set("good", link(canary_token("g"), time.time() + 30 * DAY))
    config = write_config(["bad", "good"])
    daemon = start_daemon(config)
    failed = daemon.wait_for("poll_failed", agent_id="bad")
    assert (failed["reason"], failed["detail"]) == ("invalid_response", detail)
    wait_until(lambda: daemon.state_of("good") == "ok")
    assert daemon.state_of("bad") == "unknown"
    for path in ("/", "/api/v1/agents", "/api/v1/status", "/metrics", "/healthz", "/readyz"):
        assert daemon.get(path)[0] == 200, path
    assert not daemon.events("scheduler_problem")
    assert not daemon.events("poll_crashed")
    checked = run_cli("check", "--config", str(config), "--output", "json", key=CANARY_KEY)
    assert checked.returncode == 3, checked.stderr  # `bad` could not be polled: unknown
    rows = {r["agent_id"]: r for r in json.loads(checked.stdout)["agents"]}
    assert (rows["bad"]["reason"], rows["bad"]["detail"]) == ("invalid_response", detail)
    assert rows["good"]["state"] == "ok"
    assert "Traceback" not in checked.stderr


@pytest.mark.integration
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
