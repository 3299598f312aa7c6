"""Every workspace listed on its own and under a deadline, and a failing listing shown as
failing (issue 21, "never blind").

In-process on the fake loop clock (tests/fakeclock.py): a listing that pages for ever runs
in milliseconds. A guard of a day of loop time stands for "never returns"; nothing asserts
how long anything took.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from structlog.typing import EventDict

from monitor import cli
from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.elevenlabs.limiter import RateLimiter
from monitor.elevenlabs.pool import ApiClient, ClientFactory, ClientPool, wanted_clients
from monitor.model import (
    AgentSummary,
    Health,
    ListingFilter,
    PollFailure,
    PollOutcome,
    Reason,
)
from monitor.runtime.discovery import Discovery
from monitor.runtime.targets import resolve_targets
from monitor.store import Store
from monitor.web.status.routes import status_routes
from tests.conftest import config_data
from tests.fakeclock import FakeClockLoop, fake_clock

KEY = "sk_listing_deadlines_0123456789abcdef"
DAY = 86400.0
_T = TypeVar("_T")

Listing = Callable[[], Awaitable[list[AgentSummary] | PollFailure]]


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClockLoop]:
    with fake_clock(monkeypatch) as loop:
        yield loop


@pytest.fixture
def logged(loop: FakeClockLoop) -> Iterator[list[EventDict]]:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as lines:
        yield lines


def events(lines: list[EventDict], name: str) -> list[EventDict]:
    return [line for line in lines if line["event"] == name]


def within_a_day(loop: FakeClockLoop, work: Coroutine[Any, Any, _T], seconds: float = DAY) -> _T:
    """Run `work` on the fake clock; a day of loop time without an end is "never"."""

    async def guarded() -> _T:
        try:
            return await asyncio.wait_for(work, seconds)
        except TimeoutError:
            pytest.fail(f"not done after {seconds:,.0f}s of loop time")

    return loop.run(guarded())


# --- scripted listings -----------------------------------------------------------------------


def listed(*ids: str) -> Listing:
    async def listing() -> list[AgentSummary]:
        return [AgentSummary(agent_id=i, name=f"{i}-name") for i in ids]

    return listing


def failing(reason: Reason, detail: str, status: int | None = None) -> Listing:
    async def listing() -> PollFailure:
        return PollFailure(reason, detail, status)

    return listing


def endless(seconds_a_page: float = 3.0) -> Listing:
    """A cursor that never ends, 3 s a page: the listing never returns by itself."""

    async def listing() -> list[AgentSummary]:
        while True:
            await asyncio.sleep(seconds_a_page)

    return listing


def crashing() -> Listing:
    async def listing() -> list[AgentSummary]:
        raise RuntimeError("a bug in one workspace's listing")

    return listing


class Scripted:
    """A workspace's client whose listing is whatever the test sets for that workspace."""

    def __init__(self, scripts: dict[str, Listing], name: str, settings: ClientSettings) -> None:
        self.settings = settings
        self._scripts = scripts
        self._name = name

    async def get_link(self, agent_id: str, deadline: float | None = None) -> PollOutcome:
        return PollFailure(Reason.NOT_FOUND, "HTTP 404", 404)

    async def list_agents(
        self, query: ListingFilter | None = None
    ) -> list[AgentSummary] | PollFailure:
        return await self._scripts[self._name]()

    async def aclose_when_idle(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def workspaces_config(**discovering: bool) -> Config:
    return Config.model_validate(
        {
            "workspaces": [
                {
                    "name": name,
                    "base_url": "http://127.0.0.1:9",
                    "discover": discover,
                    "agents": [] if discover else [{"id": f"{name}_1"}],
                }
                for name, discover in discovering.items()
            ],
            "poll": {"interval": "5m", "jitter": 0, "discovery_interval": "15m"},
        }
    )


def scripted_pool(config: Config, scripts: dict[str, Listing]) -> ClientPool:
    by_url: dict[str, str] = {}

    def make(settings: ClientSettings, key: str, limiter: RateLimiter) -> ApiClient:
        return Scripted(scripts, by_url[key], settings)

    # One key per workspace, so that the factory knows whose client it makes.
    keys = {w.name: f"{KEY}_{w.name}" for w in config.resolved_workspaces()}
    by_url.update({key: name for name, key in keys.items()})
    pool = ClientPool(make)
    pool.update(wanted_clients(config.resolved_workspaces(), keys))
    return pool


# --- 5. one workspace's listing holds up everyone's --------------------------------------------


def test_a_listing_that_never_ends_fails_on_its_deadline_and_holds_up_no_other(
    loop: FakeClockLoop, logged: list[EventDict]
) -> None:
    """Workspaces were listed one after another, with no deadline: a cursor that never ends
    kept every later workspace unlisted for good, and nothing said so."""
    config = workspaces_config(slow=True, fast=True)
    scripts = {"slow": listed("s1"), "fast": listed("f1")}
    health = Health()
    discovery = Discovery(scripted_pool(config, scripts), health, ConfigHolder(config), loop.wall)
    assert within_a_day(loop, discovery.list_all())
    assert health.discovered == {"slow": 1, "fast": 1}

    scripts["slow"] = endless()
    scripts["fast"] = listed("f1", "f2")
    assert within_a_day(loop, discovery.list_all())  # fast's list changed
    assert [t.key.agent_id for t in discovery.found["fast"]] == ["f1", "f2"]
    assert health.discovered == {"slow": 1, "fast": 2}
    # slow: a failed listing, reason timeout; its last good list kept, the error counted.
    assert [t.key.agent_id for t in discovery.found["slow"]] == ["s1"]
    assert health.discovery_errors == {("slow", "timeout"): 1}
    assert health.discovery_failing == {"slow": "timeout"}
    [failed] = events(logged, "discovery_failed")
    assert (failed["workspace"], failed["reason"]) == ("slow", "timeout")
    assert "810s" in failed["detail"]  # 0.9 of the 15-minute discovery interval


def test_one_listing_that_crashes_never_cancels_the_others(
    loop: FakeClockLoop, logged: list[EventDict]
) -> None:
    config = workspaces_config(broken=True, fine=True, late=True)
    scripts = {"broken": crashing(), "fine": listed("a"), "late": endless()}
    health = Health()
    discovery = Discovery(scripted_pool(config, scripts), health, ConfigHolder(config), loop.wall)
    assert within_a_day(loop, discovery.list_all())
    assert health.discovered == {"fine": 1}
    assert health.discovery_failing == {"broken": "internal_error", "late": "timeout"}
    assert health.discovery_errors == {("broken", "internal_error"): 1, ("late", "timeout"): 1}
    assert {e["workspace"] for e in events(logged, "discovery_failed")} == {"broken", "late"}


def test_check_lists_under_the_deadline_and_still_polls_the_configured_agents(
    loop: FakeClockLoop, monkeypatch: pytest.MonkeyPatch, logged: list[EventDict]
) -> None:
    """`check` with a listing whose cursor never ends, 3 s a page (the real client, over a
    mock transport): it used to page for hours (10,000 pages) before polling anything.
    Now it lists under the daemon's deadline, so it is done within one discovery interval."""
    expiry = loop.wall() + 30 * DAY
    pages: list[str | None] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/convai/agents":
            await asyncio.sleep(3)
            if request.url.params.get("archived") == "true":  # the sweep's: none archived
                return httpx.Response(200, content=b'{"agents": []}')
            cursor = request.url.params.get("cursor")
            pages.append(cursor)
            page = int(cursor[1:]) if cursor else 0
            rows = [{"agent_id": f"listed_{page}", "name": ""}]
            answer = {"agents": rows, "next_cursor": f"c{page + 1}", "has_more": True}
            return httpx.Response(200, content=json.dumps(answer).encode())
        agent_id = request.url.path.split("/")[-2]
        token = {"conversation_token": "tok", "expiration_time_unix_secs": int(expiry)}
        return httpx.Response(200, content=json.dumps({"agent_id": agent_id, "token": token}))

    def factory(on_request: Callable[[float], None]) -> ClientFactory:
        def make(settings: ClientSettings, key: str, limiter: RateLimiter) -> ApiClient:
            transport = httpx.MockTransport(handler)
            return ElevenLabsClient(settings, key, transport=transport, limiter=limiter)

        return make

    monkeypatch.setattr(cli, "http_clients", factory)
    config = Config.model_validate(
        config_data(
            "https://api.elevenlabs.test",
            ["configured"],
            discover=True,
            elevenlabs={"timeout": "10s"},  # a page comes in 3 s: no request times out
        )
    )
    polled = cli._poll_once(config, {"default": KEY}, None)
    records, listing_failed = within_a_day(loop, polled, config.poll.discovery_interval)
    assert [(r.key.agent_id, r.poll_success) for r in records] == [("configured", True)]
    assert listing_failed
    [failed] = events(logged, "discovery_failed")
    assert failed["reason"] == "timeout"
    assert len(pages) <= 810 / 3 + 1  # the deadline, 0.9 of the interval, at 3 s a page


# --- 6. Discovery's own `failed` set shadowed Health -------------------------------------------


def test_a_failing_listing_shows_as_failing_with_its_reason_not_pending(
    loop: FakeClockLoop, logged: list[EventDict]
) -> None:
    """A workspace whose key cannot list showed as "pending" (not polled yet) on the page and
    in /api/v1/status for ever: now as failing, with its reason, until a listing succeeds."""
    config = workspaces_config(prod=False, eu=True)
    scripts = {"eu": failing(Reason.UNAUTHORIZED, "HTTP 401 invalid_api_key", 401)}
    health = Health(config_reload_at=loop.wall())
    settings = ConfigHolder(config)
    discovery = Discovery(scripted_pool(config, scripts), health, settings, loop.wall)
    store = Store()
    routes = status_routes(store, health, settings, loop.wall)
    app = Starlette(routes=routes)

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as c:
            return await c.get(path)

    def status() -> dict[str, Any]:
        answer = loop.run(get("/api/v1/status")).json()
        return {w["name"]: w for w in answer["workspaces"]}

    within_a_day(loop, discovery.list_all())
    store.sync(resolve_targets(config, discovery.found))
    workspaces = status()
    assert workspaces["eu"]["reachability"] == "listing_failed"
    assert workspaces["eu"]["listing"] == {
        "state": "failing",
        "reason": "unauthorized",
        "agents": None,
        "last_success_at": None,
        "last_success_unix": None,
        "last_success_age_seconds": None,
    }
    assert workspaces["prod"]["listing"] is None  # prod does not discover
    assert health.discovery_failing == {"eu": "unauthorized"}
    page = loop.run(get("/")).text
    assert "listing failed: unauthorized" in page
    assert "The agent listing of workspace eu fails (unauthorized)" in page

    scripts["eu"] = listed("e1", "e2")
    within_a_day(loop, discovery.list_all())
    store.sync(resolve_targets(config, discovery.found))
    workspaces = status()
    assert health.discovery_failing == {}
    assert workspaces["eu"]["reachability"] == "pending"  # listed; its agents not yet polled
    listing = workspaces["eu"]["listing"]
    assert (listing["state"], listing["reason"], listing["agents"]) == ("ok", None, 2)
    assert listing["last_success_unix"] == loop.wall()
    assert "listing failed" not in loop.run(get("/")).text

    # A failure after a success keeps the list, and says so.
    scripts["eu"] = failing(Reason.SERVER_ERROR, "HTTP 503", 503)
    within_a_day(loop, discovery.list_all())
    listing = status()["eu"]["listing"]
    assert (listing["state"], listing["reason"], listing["agents"]) == (
        "failing",
        "server_error",
        2,
    )
    # A workspace that stops discovering leaves no failure behind.
    scripts["eu"] = failing(Reason.SERVER_ERROR, "HTTP 503", 503)
    within_a_day(loop, discovery.list_all())
    discovery.keep_only({"prod"})
    assert health.discovery_failing == {}
