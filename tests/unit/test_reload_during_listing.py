"""A reload that changes discovery filters while a listing runs: that listing answers the old
filters, so it is dropped, and the workspace is listed again as soon as it ends (not a
discovery_interval later, and without APScheduler refusing a second instance).

In-process on the fake loop clock (tests/fakeclock.py): runs are awaited through events, and
times are the loop's, never the wall clock's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

import pytest
import structlog
from structlog.typing import EventDict

from monitor.config.schema import Config
from monitor.model import AgentKey, AgentSummary, Health, ListingFilter, PollFailure, Target
from monitor.runtime.jobs import Job, Jobs
from monitor.runtime.wiring import Runtime
from tests.conftest import config_data
from tests.fakeapi import FakeApi, FakeClient
from tests.fakeclock import FakeClockLoop, fake_clock

KEY = "sk_reload_during_listing_0123456789"
INTERVAL = 100.0  # between two scheduled runs
BUSY = 10.0  # how long a run takes
GUARD = 1000.0  # of loop time: stands for "never"


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClockLoop]:
    with fake_clock(monkeypatch) as loop:
        yield loop


@pytest.fixture
def logged(loop: FakeClockLoop) -> Iterator[list[EventDict]]:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as lines:
        yield lines


def problems(lines: list[EventDict]) -> list[EventDict]:
    return [line for line in lines if line["event"] == "scheduler_problem"]


class Runs:
    """A job that notes when each run starts (loop time), then takes BUSY seconds."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.started = asyncio.Condition()

    async def job(self) -> None:
        async with self.started:
            self.starts.append(asyncio.get_running_loop().time())
            self.started.notify_all()
        await asyncio.sleep(BUSY)

    async def until(self, count: int) -> None:
        async with asyncio.timeout(GUARD), self.started:
            await self.started.wait_for(lambda: len(self.starts) >= count)


async def _scenario(loop: FakeClockLoop, health: Health, again: str) -> list[float]:
    """Start a job, ask for it again (`again`) while its first run goes; its run starts."""
    jobs = Jobs(health, loop.wall)
    jobs.start()
    runs = Runs()
    job: Job = runs.job
    jobs.every("discover", INTERVAL, job, now=True)
    await runs.until(1)
    await asyncio.sleep(1)  # the first run is well under way
    if again == "run_now":
        jobs.run_now("discover")
    else:  # a reload that replaces the job, to run now
        jobs.every("discover", INTERVAL, job, now=True)
    await runs.until(3)
    await jobs.stop(1.0)
    return [start - runs.starts[0] for start in runs.starts]


@pytest.mark.parametrize("again", ["run_now", "every_now"])
def test_asking_a_running_job_to_run_now_runs_it_again_when_it_ends(
    loop: FakeClockLoop, logged: list[EventDict], again: str
) -> None:
    health = Health()
    starts = loop.run(_scenario(loop, health, again))
    # Once more right after the run going (not an interval later), then the plan from there.
    assert starts[:3] == pytest.approx([0.0, BUSY, BUSY + INTERVAL], abs=0.01)
    assert "max_instances" not in health.scheduler_events
    assert problems(logged) == []


# --- a reload during a slow listing ---------------------------------------------------------


class SlowListing(FakeApi):
    """The first listing waits for `release`; every listing's start is noted (loop time)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started: list[float] = []
        self.listed = asyncio.Condition()

    def client(self, settings, key, _):  # type: ignore[no-untyped-def]
        return _SlowClient(self, settings, key)

    async def until(self, count: int) -> None:
        async with asyncio.timeout(GUARD), self.listed:
            await self.listed.wait_for(lambda: len(self.started) >= count)


class _SlowClient(FakeClient):
    api: SlowListing

    async def list_agents(
        self, query: ListingFilter | None = None, *, archived: bool = False
    ) -> list[AgentSummary] | PollFailure:
        if archived:  # the exposure sweep is not the listing under test
            return await super().list_agents(query, archived=True)
        async with self.api.listed:
            self.api.started.append(asyncio.get_running_loop().time())
            self.api.listed.notify_all()
        if len(self.api.started) == 1:
            await self.api.release.wait()
        return await super().list_agents(query)


def _config(discover: object) -> Config:
    return Config.model_validate(
        config_data("http://127.0.0.1:9", [], discover=discover, poll={"discovery_interval": "10m"})
    )


def test_a_reload_adding_exclude_tags_during_a_listing_drops_it_and_lists_again(
    loop: FakeClockLoop, logged: list[EventDict]
) -> None:
    api = SlowListing()
    api.listing = [
        AgentSummary(agent_id="agent_keep", name="keep"),
        AgentSummary(agent_id="agent_test", name="test", tags=("test",)),
    ]
    runtime = Runtime(_config(True), lambda _: KEY, clock=loop.wall, make_client=api.client)
    watched: set[str] = set()
    sync = runtime.store.sync

    def spy(targets: Iterable[Target]) -> tuple[list[AgentKey], list[AgentKey]]:
        targets = list(targets)
        watched.update(t.key.agent_id for t in targets)
        return sync(targets)

    runtime.store.sync = spy  # type: ignore[method-assign]

    async def main() -> None:
        runtime.start()
        await api.until(1)  # the listing with no filter runs
        runtime.apply(_config({"exclude_tags": ["test"]}), {"default": KEY})
        ended = loop.time()
        api.release.set()  # the old listing ends now, with both agents
        await api.until(2)
        relisted = api.started[1] - ended
        await asyncio.sleep(1)  # the new listing is applied
        await runtime.stop()
        # Listed again right after the old listing ended, not a discovery_interval later.
        assert relisted < 1.0

    loop.run(main())
    assert "agent_test" not in watched  # the old filter's answer never reached the store
    assert "agent_keep" in watched
    assert "max_instances" not in runtime.health.scheduler_events
    assert problems(logged) == []
    assert [line for line in logged if line["event"] == "discovery_result_dropped"]
