"""Nothing in one agent's answer affects another agent, the cycle, /metrics, the status page,
the JSON API or `check`: an answer that does not fit the spec strictly is `invalid_response`
naming the field, a compressed answer is refused unread, and an unsafe discovered id is never
requested."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from structlog.testing import capture_logs

from monitor import logs
from monitor.alerts import AlertLog, log_poll_failed
from monitor.cli import _row, _table
from monitor.config.holder import ConfigHolder
from monitor.config.schema import AgentConfig, Config
from monitor.elevenlabs.answers import parse_link_body
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.evaluate import Thresholds, evaluate, next_change
from monitor.model import (
    AgentKey,
    AgentSummary,
    Health,
    LinkAnswer,
    PollFailure,
    Reason,
    Target,
    is_safe_agent_id,
    iso,
)
from monitor.runtime.targets import listed_targets
from monitor.store import Store
from monitor.web.metrics import Metrics
from monitor.web.status.routes import status_routes
from tests.conftest import CANARY_KEY, canary_token
from tests.settings import holder
from tests.standin import gzip_layers

DAY = 86400.0
NOW = 1_800_000_000.0
KEY = AgentKey("default", "agent_1")
THRESHOLDS = Thresholds(7 * DAY, DAY)
OUT_OF_RANGE = (
    "the answer does not fit the schema at token.expiration_time_unix_secs: "
    "not a Unix time in seconds between 2000 and 2200"
)
COMPRESSED = "the answer is compressed (Content-Encoding), though only identity was accepted"


def _link(agent_id: str, expiry: Any, **extra: Any) -> bytes:
    token = {"conversation_token": canary_token("x"), "expiration_time_unix_secs": expiry}
    return json.dumps({"agent_id": agent_id, "token": token | extra}).encode()


# --- the whole path, in-process, for any JSON answer -----------------------------------------


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.loads reads them
    | st.text(max_size=20),
    _containers,
    max_leaves=12,
)
expiries = (
    st.integers()
    | st.floats()
    | st.booleans()
    | st.text(max_size=12)
    | st.sampled_from([10**400, 1_800_000_000_000, -(10**20), 0, 253_402_300_800])
)
link_shaped = st.fixed_dictionaries(
    {"agent_id": st.sampled_from(["agent_1", "agent_2"]) | json_values},
    optional={
        "token": st.none()
        | json_values
        | st.fixed_dictionaries(
            {"conversation_token": st.just("tok_canary_p_b7c1e0") | json_values},
            optional={
                "expiration_time_unix_secs": expiries | st.none(),
                "agent_id": json_values,
                "purpose": json_values,
            },
        )
    },
)
bodies = st.one_of(json_values, link_shaped).map(lambda v: json.dumps(v).encode()) | st.binary(
    max_size=64
)


async def _pages(app: Starlette) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.get(p) for p in ("/", "/api/v1/agents", "/api/v1/status")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, now=st.sampled_from([NOW, 946_684_800.0, 7_258_118_000.0]))
@example(body=_link("agent_1", 1_800_000_000_000), now=NOW)  # milliseconds
@example(body=_link("agent_1", 10**20), now=NOW)
@example(body=_link("agent_1", True), now=NOW)
def test_no_answer_breaks_any_output(body: bytes, now: float) -> None:
    outcome = parse_link_body(body, "agent_1")
    store = Store()
    store.sync([Target(KEY, "bot")])
    record = store.record(outcome, KEY, now)
    assert record is not None
    state = evaluate(record.observation, now, THRESHOLDS)
    with capture_logs():
        AlertLog(holder()).observe(record, state, now)
        if isinstance(outcome, PollFailure):
            log_poll_failed(record, outcome)
    when = next_change(record.observation, now, THRESHOLDS)
    assert when is None or iso(when)
    metrics = Metrics(store, Health(), holder(expose_relative=True), lambda: now)
    assert b"elevenlabs_agent_link_state" in metrics.render().body()
    assert metrics.render(openmetrics=True).body().endswith(b"# EOF\n")
    config = Config(agents=[AgentConfig(id="agent_1")])
    app = Starlette(routes=status_routes(store, Health(), ConfigHolder(config), lambda: now))
    assert [r.status_code for r in asyncio.run(_pages(app))] == [200, 200, 200]
    rows = [_row(r, evaluate(r.observation, now, THRESHOLDS), now) for r in store.snapshot()]
    assert json.dumps({"agents": rows})
    assert _table(rows)
    if isinstance(outcome, LinkAnswer) and outcome.observation.expires_at is not None:
        assert 946_684_800 <= outcome.observation.expires_at < 7_258_118_400


@pytest.mark.parametrize(
    "timestamp",
    [float("nan"), float("inf"), -float("inf"), 1e20, -1e20, 10**5000, 0.0],
    ids=["nan", "inf", "-inf", "1e20", "-1e20", "10**5000", "zero"],
)
def test_iso_is_total(timestamp: float) -> None:
    assert isinstance(iso(timestamp), str)


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent_id", "safe"),
    [
        ("agent_01jz8x", True),
        ("a.b~c-d_e", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        (".", False),
        ("..", False),
        ("...", False),
        ("a/b", False),
        ("a%2Fb", False),
        ("a?b", False),
        ("a b", False),
        ("agent\n", False),
        ("é", False),
    ],
)
def test_a_safe_agent_id_is_one_path_segment(agent_id: str, safe: bool) -> None:
    assert is_safe_agent_id(agent_id) is safe


def test_unsafe_discovered_ids_are_skipped_with_one_line_each() -> None:
    listing = [
        AgentSummary(agent_id="good_1", name="a"),
        AgentSummary(agent_id="../../v1/user", name="b"),
        AgentSummary(agent_id="good_2", name="c"),
    ]
    with capture_logs() as lines:
        targets = listed_targets("prod", listing)
    assert [t.key.agent_id for t in targets] == ["good_1", "good_2"]
    assert [line["event"] for line in lines] == ["discovered_agent_skipped"]
    # Named, so the operator can find it: escaped, cut and redacted (tests/unit/test_unsafe_ids.py).
    assert [line["agent_id"] for line in lines] == ["../../v1/user"]


def test_a_discovered_id_that_carries_the_key_is_skipped() -> None:
    logs.register_secret(CANARY_KEY)
    listing = [AgentSummary(agent_id=CANARY_KEY), AgentSummary(agent_id="good")]
    with capture_logs() as lines:
        targets = listed_targets("prod", listing)
    assert [t.key.agent_id for t in targets] == ["good"]
    assert [line["reason"] for line in lines] == ["the agent id carries a secret"]


# --- compression, at the client ---------------------------------------------------------------


def _client_outcome(response: httpx.Response) -> tuple[object, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return response

    async def scenario() -> object:
        settings = ClientSettings("https://api.test", 5.0, 1, 100.0, 0)
        client = ElevenLabsClient(settings, CANARY_KEY, transport=httpx.MockTransport(handler))
        try:
            return await client.get_link("agent_1")
        finally:
            await client.aclose()

    return asyncio.run(scenario()), requests


@pytest.mark.parametrize("coding", ["gzip", "gzip, gzip", "deflate", "br", "zstd", "x-unknown"])
def test_a_compressed_answer_is_refused_unread(coding: str) -> None:
    body = _link("agent_1", int(NOW))
    headers = {"content-encoding": coding}
    stream = httpx.ByteStream(gzip_layers(body, coding.count("gzip")))
    outcome, requests = _client_outcome(httpx.Response(200, headers=headers, stream=stream))
    assert outcome == PollFailure(Reason.INVALID_RESPONSE, COMPRESSED, 200)
    assert requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("coding", ["identity", "", "Identity"])
def test_an_identity_answer_is_read(coding: str) -> None:
    response = httpx.Response(
        200, headers={"content-encoding": coding}, content=_link("agent_1", int(NOW))
    )
    outcome, _ = _client_outcome(response)
    assert isinstance(outcome, LinkAnswer)


def test_a_compressed_error_is_classified_by_its_status() -> None:
    stream = httpx.ByteStream(gzip.compress(b'{"detail": {"status": "system_busy"}}'))
    response = httpx.Response(503, headers={"content-encoding": "gzip"}, stream=stream)
    outcome, _ = _client_outcome(response)
    assert outcome == PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503)
