"""The agent listing read row by row, whatever a row holds (issue 21, "never blind").

One row must never cost the whole workspace's listing, a listing must never cost unbounded
memory or log lines, and a listing that says it has more pages but gives no way to fetch them
is a failed listing, not a complete one. Against `ElevenLabsClient` over `httpx.MockTransport`,
and `Discovery` over such clients: no network, no sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import structlog
from structlog.typing import EventDict

from monitor import logs
from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.elevenlabs.limiter import RateLimiter
from monitor.elevenlabs.pool import ApiClient, ClientPool, wanted_clients
from monitor.model import AgentSummary, Health, ListingFilter, PollFailure, Reason
from monitor.runtime.discovery import Discovery
from tests.conftest import config_data

API_KEY = "sk_listing_rows_0123456789abcdef0123456789abcdef"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", set())
    logs.register_secret(API_KEY)


@pytest.fixture
def logged() -> Iterator[list[EventDict]]:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as lines:
        yield lines


def client(handler: Handler) -> ElevenLabsClient:
    settings = ClientSettings(
        base_url="https://api.elevenlabs.test",
        timeout=5.0,
        max_concurrency=4,
        max_requests_per_second=1000.0,
        max_retries=0,
    )
    return ElevenLabsClient(settings, API_KEY, transport=httpx.MockTransport(handler))


def list_agents(
    handler: Handler, query: ListingFilter | None = None
) -> list[AgentSummary] | PollFailure:
    async def scenario() -> list[AgentSummary] | PollFailure:
        listing = client(handler)
        try:
            return await listing.list_agents(query)
        finally:
            await listing.aclose()

    return asyncio.run(scenario())


def body(rows: list[object], next_cursor: str | None = None, has_more: bool = False) -> bytes:
    page = {"agents": rows, "next_cursor": next_cursor, "has_more": has_more}
    return json.dumps(page, separators=(",", ":")).encode()


def one_page(content: bytes) -> Handler:
    return lambda _: httpx.Response(200, content=content)


def pages(bodies: list[bytes]) -> Handler:
    """Page i answers cursor `c<i>` (the first, no cursor); each body says where it goes next."""

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        return httpx.Response(200, content=bodies[int(cursor[1:]) if cursor else 0])

    return handler


def chained(rows_per_page: list[list[object]]) -> Handler:
    last = len(rows_per_page) - 1
    return pages(
        [
            body(rows, f"c{i + 1}" if i < last else None, i < last)
            for i, rows in enumerate(rows_per_page)
        ]
    )


def events(lines: list[EventDict], name: str) -> list[EventDict]:
    return [line for line in lines if line["event"] == name]


# --- 1. one row fails the whole listing ---------------------------------------------------------


def test_a_lone_surrogate_in_one_name_costs_nothing_but_that_character(
    logged: list[EventDict],
) -> None:
    """`"x\\ud800y"` is valid JSON but no text: the page's parser refused it, and with it every
    agent of the workspace. Now the page is read row by row and the lone surrogate becomes
    U+FFFD, so the name can be encoded wherever it goes (/metrics, the page, a log line)."""
    raw = (
        b'{"agents": [{"agent_id": "a1", "name": "x\\ud800y"},'
        b' {"agent_id": "a2", "name": "two"},'
        b' {"agent_id": "a\\udfff3", "name": "bad id"}], "has_more": false}'
    )
    listing = list_agents(one_page(raw))
    assert isinstance(listing, list), listing
    assert [(a.agent_id, a.name) for a in listing] == [
        ("a1", "x\ufffdy"),
        ("a2", "two"),
        ("a\ufffd3", "bad id"),  # not a safe path segment: discovery skips it, by its id
    ]
    for agent in listing:
        agent.agent_id.encode()
        agent.name.encode()
    assert not events(logged, "discovery_rows_skipped")


def test_a_cursor_that_is_no_text_fails_the_listing_instead_of_raising() -> None:
    raw = b'{"agents": [{"agent_id": "a1"}], "next_cursor": "c\\ud800", "has_more": true}'
    listing = list_agents(one_page(raw))
    assert isinstance(listing, PollFailure)
    assert listing.reason is Reason.INVALID_RESPONSE


# --- 2. names have no length limit --------------------------------------------------------------


def test_discovered_names_are_cut_to_256_characters_said_once_per_listing(
    logged: list[EventDict],
) -> None:
    """200 names of 250,000 characters (one a page, as a 256 KiB answer allows) were kept
    whole: 50,000,000 characters held, and every one of them on /metrics."""
    long_name = "n" * 250_000
    listing = list_agents(
        chained([[{"agent_id": f"a{i:03d}", "name": long_name}] for i in range(200)])
    )
    assert isinstance(listing, list), listing
    assert len(listing) == 200
    assert {len(a.name) for a in listing} == {256}
    assert sum(len(a.name) for a in listing) == 200 * 256
    [cut] = events(logged, "discovered_names_cut")
    assert cut["count"] == 200
    assert cut["rows"] == [0, 1, 2, 3, 4]
    assert cut["limit"] == 256
    assert len(logged) == 1


def test_a_name_is_redacted_before_it_is_cut() -> None:
    name = "n" * 250 + API_KEY + "m" * 10  # the key straddles character 256
    listing = list_agents(one_page(body([{"agent_id": "a1", "name": name}])))
    assert isinstance(listing, list)
    [agent] = listing
    assert agent.name == "n" * 250 + "[REDAC"
    assert API_KEY[:6] not in agent.name


def test_a_row_keeps_only_what_the_monitor_uses() -> None:
    """Extra fields (`access_info`, anything) are not held for the listing's life; the tags
    (for discover's filters and labels) only up to 50 of them, and once filtered only those
    a label is taken from (here: any tag)."""
    row = {"agent_id": "a1", "name": "one", "junk": "j" * 200_000, "tags": ["t"] * 1000}
    listing = list_agents(one_page(body([row])), ListingFilter(label_prefixes=("",)))
    assert isinstance(listing, list)
    assert not hasattr(listing[0], "__dict__")  # slots only: no extra field is held
    assert listing[0].tags == ("t",) * 50


# --- 3. bad rows are unbounded and each is logged -----------------------------------------------


def test_rows_that_are_not_agents_are_counted_in_one_line_per_listing(
    logged: list[EventDict],
) -> None:
    """Pages of non-object rows gave one log line per row (360,000 lines for three pages of
    120,000). Now one line per listing: how many, the first few indexes, which fields."""
    junk: list[object] = [0] * 900
    rows: list[list[object]] = [
        [*junk, {"agent_id": "p0"}],
        [{"agent_id": "p1", "name": 7}, *junk, {"agent_id": "p1b"}],
        [None, {"name": "no id"}, *junk, {"agent_id": "p2", "name": None}],
    ]
    listing = list_agents(chained(rows))
    assert isinstance(listing, list), listing
    assert [a.agent_id for a in listing] == ["p0", "p1b", "p2"]
    [skipped] = events(logged, "discovery_rows_skipped")
    assert skipped["count"] == 3 * 900 + 3
    assert skipped["rows"] == [0, 1, 2, 3, 4]
    assert skipped["fields"] == {"the row": 2701, "name": 1, "agent_id": 1}
    assert "no id" not in repr(logged)
    assert len(logged) == 1


def test_a_page_of_more_than_1000_rows_is_an_invalid_response(
    logged: list[EventDict],
) -> None:
    """The API's page_size is at most 100: 120,000 rows on one page is not a page."""
    listing = list_agents(one_page(body([0] * 120_000)))
    assert isinstance(listing, PollFailure)
    assert listing.reason is Reason.INVALID_RESPONSE
    assert "1,000 rows" in listing.detail
    assert len(logged) <= 1


def test_the_loop_runs_between_pages() -> None:
    """Reading a page never holds the loop across the next one: another task runs between
    any two pages (a /healthz answered mid-listing)."""
    ticks: list[int] = []
    seen: list[int] = []
    count = 20

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        index = int(cursor[1:]) if cursor else 0
        seen.append(len(ticks))
        more = index < count - 1
        return httpx.Response(200, content=body([{"agent_id": f"a{index}"}], f"c{index + 1}", more))

    async def scenario() -> None:
        listing = client(handler)
        done = False

        async def other() -> None:
            while not done:
                ticks.append(1)
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        try:
            result = await listing.list_agents()
        finally:
            done = True
            await task
            await listing.aclose()
        assert isinstance(result, list)
        assert len(result) == count

    asyncio.run(scenario())
    assert len(seen) == count
    assert all(b > a for a, b in itertools.pairwise(seen)), seen


# --- 4. has_more without a cursor -----------------------------------------------------------------


@pytest.mark.parametrize("cursor", [None, ""])
def test_has_more_without_a_cursor_is_an_invalid_response(cursor: str | None) -> None:
    listing = list_agents(one_page(body([{"agent_id": "a1"}], cursor, True)))
    assert isinstance(listing, PollFailure), listing
    assert listing.reason is Reason.INVALID_RESPONSE
    assert "next_cursor" in listing.detail


def test_a_listing_cut_short_by_a_missing_cursor_keeps_the_last_good_list(
    logged: list[EventDict],
) -> None:
    """The agents on the pages never fetched used to be dropped as if gone: now the listing
    fails, the last good list is kept, the error counted and the workspace shown failing."""
    whole = [
        body([{"agent_id": "a1"}], "c1", True),
        body([{"agent_id": "a2"}], None, False),
    ]
    cut_short = [body([{"agent_id": "a1"}], None, True)]
    served = [whole]

    def handler(request: httpx.Request) -> httpx.Response:
        return pages(served[0])(request)

    def make(settings: ClientSettings, key: str, limiter: RateLimiter) -> ApiClient:
        return ElevenLabsClient(
            settings, key, transport=httpx.MockTransport(handler), limiter=limiter
        )

    config = Config.model_validate(config_data("https://api.elevenlabs.test", [], discover=True))
    health = Health()
    clock = iter(range(1_000, 2_000)).__next__

    async def scenario() -> None:
        pool = ClientPool(make)
        pool.update(wanted_clients(config.resolved_workspaces(), {"default": API_KEY}))
        discovery = Discovery(pool, health, ConfigHolder(config), clock=lambda: float(clock()))
        try:
            assert await discovery.list_all()
            assert [t.key.agent_id for t in discovery.found["default"]] == ["a1", "a2"]
            listed_at = health.discovery_last_success["default"]
            served[0] = cut_short
            assert not await discovery.list_all()
            assert [t.key.agent_id for t in discovery.found["default"]] == ["a1", "a2"]
            assert health.discovered["default"] == 2
            assert health.discovery_last_success["default"] == listed_at
            assert health.discovery_errors == {("default", "invalid_response"): 1}
        finally:
            await pool.aclose()

    asyncio.run(scenario())
    [failed] = events(logged, "discovery_failed")
    assert failed["reason"] == "invalid_response"
