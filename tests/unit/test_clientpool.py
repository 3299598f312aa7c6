"""The client pool against the loopback stand-in, in-process: one limiter per workspace
through client replacement, and a client closed only when nothing holds it."""

from __future__ import annotations

import asyncio
import dataclasses

from monitor.elevenlabs.client import ClientSettings
from monitor.elevenlabs.pool import ClientPool, http_clients
from monitor.model import AgentSummary, PollOutcome
from tests.conftest import CANARY_KEY, canary_token
from tests.standin import StandIn, link


async def until(condition: object, timeout: float = 10) -> None:
    """Poll `condition` (a callable) on the loop until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


def settings(standin: StandIn, rate: float, concurrency: int = 8) -> ClientSettings:
    return ClientSettings(
        base_url=standin.url,
        timeout=5,
        max_concurrency=concurrency,
        max_requests_per_second=rate,
        max_retries=0,
    )


def test_the_rate_limit_holds_across_a_client_replacement(standin: StandIn) -> None:
    agents = [f"a{i}" for i in range(12)]
    for agent in agents:
        standin.set(agent, link(canary_token(agent), None))

    async def main() -> list[PollOutcome]:
        pool = ClientPool(http_clients(lambda _: None))
        first = settings(standin, rate=4)
        pool.update({"w": (first, CANARY_KEY)})
        old = pool.get("w")
        assert old is not None
        polls = [asyncio.create_task(old.get_link(a)) for a in agents[:6]]
        await until(lambda: standin.count() >= 1)
        pool.update({"w": (dataclasses.replace(first, timeout=6), CANARY_KEY)})
        new = pool.get("w")
        assert new is not None
        assert new is not old
        polls += [asyncio.create_task(new.get_link(a)) for a in agents[6:]]
        outcomes = await asyncio.gather(*polls)
        await pool.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    assert all(not hasattr(o, "reason") for o in outcomes)
    assert standin.count() == 12
    assert standin.max_per_window(1.0) <= 4


def test_a_listing_holds_its_client_until_its_last_page(standin: StandIn) -> None:
    standin.listing = [(f"l{i:03d}", "", False) for i in range(250)]  # three pages

    async def main() -> list[AgentSummary] | object:
        pool = ClientPool(http_clients(lambda _: None))
        first = settings(standin, rate=1, concurrency=1)  # pages a second apart
        pool.update({"w": (first, CANARY_KEY)})
        old = pool.get("w")
        assert old is not None
        listing = asyncio.create_task(old.list_agents())
        await until(lambda: standin.count() == 1)
        pool.update({"w": (dataclasses.replace(first, timeout=6), CANARY_KEY)})
        assert pool.retiring == 1
        agents = await listing
        await until(lambda: pool.retiring == 0)  # closed once the listing let go
        await pool.aclose()
        return agents

    agents = asyncio.run(main())
    assert isinstance(agents, list)
    assert len(agents) == 250


def test_a_changed_rate_keeps_the_starts_already_made() -> None:
    from monitor.elevenlabs.limiter import RateLimiter

    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def main() -> None:
        limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
        for _ in range(4):
            await limiter.acquire()
        limiter.retune(2)
        await limiter.acquire()  # two starts of the last second still count

    asyncio.run(main())
    assert slept == [1.05]
