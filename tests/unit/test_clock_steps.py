"""A step of the wall clock (NTP, a resumed VM) must not delay, hurry or burst the jobs, and
jitter must not accumulate: runs are timed on the loop's monotonic clock, the wall clock only
stamps results. On a fake loop whose wall clock can step apart from its monotonic one; an hour
of scheduling runs in milliseconds, with no sleeping and no real-time assertion."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator

import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict

from monitor.model import Health
from monitor.runtime.jobs import Job, Jobs
from tests.fakeclock import FakeClockLoop, fake_clock

HOUR = 3600.0
INTERVAL = 10.0


class Wall:
    """The loop's wall clock (`loop.wall()`, which APScheduler's datetime.now() reads too),
    moved by `step` alone, apart from the loop's monotonic `time()`."""

    def __init__(self, loop: FakeClockLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop = loop
        self.step = 0.0
        unstepped = loop.wall
        monkeypatch.setattr(loop, "wall", lambda: unstepped() + self.step)

    def run(
        self, scenario: Callable[[Jobs], Awaitable[None]], health: Health | None = None
    ) -> list[EventDict]:
        """Start the jobs, play `scenario` on them, stop them; the lines logged."""

        async def main() -> None:
            jobs = Jobs(health or Health(), self.loop.wall)
            jobs.start()
            await scenario(jobs)
            await jobs.stop(1.0)

        with capture_logs() as lines:
            self.loop.run(main())
        return lines

    def recorder(self, runs: list[float], busy: float = 0.0) -> Job:
        """A job that notes when it starts (loop time), then takes `busy` seconds."""

        async def job() -> None:
            runs.append(self.loop.time())
            if busy:
                await asyncio.sleep(busy)

        return job


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wall]:
    with fake_clock(monkeypatch) as loop:
        yield Wall(loop, monkeypatch)


def problems(lines: list[EventDict]) -> list[EventDict]:
    return [line for line in lines if line["event"] == "scheduler_problem"]


def steps(lines: list[EventDict]) -> list[float]:
    return [float(line["step"]) for line in lines if line["event"] == "clock_step"]


def test_a_backward_wall_step_does_not_stop_polling(wall: Wall) -> None:
    runs: list[float] = []
    health = Health()

    async def scenario(jobs: Jobs) -> None:
        jobs.every("poll-cycle", INTERVAL, wall.recorder(runs), now=True)
        await asyncio.sleep(25)
        wall.step -= HOUR  # between two runs, the wall clock goes back an hour
        await asyncio.sleep(30)

    lines = wall.run(scenario, health)
    # Polling went on at its pace on the loop's clock: the run due at 30 s came at 30 s.
    assert runs == pytest.approx([0, 10, 20, 30, 40, 50])
    assert steps(lines) == pytest.approx([-HOUR], abs=0.01)  # said once, with its size
    assert problems(lines) == []
    assert health.scheduler_events == {"clock_step": 1}


def test_a_forward_wall_step_neither_hurries_a_job_nor_skips_one_as_still_running(
    wall: Wall,
) -> None:
    polls: list[float] = []
    listings: list[float] = []
    looks: list[float] = []
    health = Health()

    async def scenario(jobs: Jobs) -> None:
        # A cycle spreads its polls over most of its interval: it is still running at the step.
        jobs.every("poll-cycle", INTERVAL, wall.recorder(polls, busy=8.0), now=True)
        jobs.every("discover", 15.0, wall.recorder(listings), now=True)
        jobs.every("watch-files", 2.0, wall.recorder(looks))
        await asyncio.sleep(23)
        wall.step += HOUR  # mid-cycle, the wall clock jumps an hour ahead
        await asyncio.sleep(30)

    lines = wall.run(scenario, health)
    assert problems(lines) == []  # no "max_instances": nothing ran early into a running cycle
    assert polls == pytest.approx([0, 10, 20, 30, 40, 50])
    assert listings == pytest.approx([0, 15, 30, 45])  # no early run, no burst
    assert looks == pytest.approx([2.0 * k for k in range(1, 27)])
    assert steps(lines) == pytest.approx([HOUR], abs=0.01)
    assert health.scheduler_events == {"clock_step": 1}


def test_jitter_never_accumulates(wall: Wall) -> None:
    jitter = 9.0
    count = 300
    runs: list[float] = []

    async def scenario(jobs: Jobs) -> None:
        jobs.every("poll-cycle", INTERVAL, wall.recorder(runs), jitter=jitter, now=True)
        await asyncio.sleep(INTERVAL * count - 0.5)

    wall.run(scenario)
    first = runs[0]
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    late = [
        (k, round(run - first - k * INTERVAL, 3))
        for k, run in enumerate(runs)
        if not k * INTERVAL - 1e-6 <= run - first < k * INTERVAL + jitter
    ]
    assert late == []  # the k-th run is within [k*interval, k*interval + jitter) of the first
    assert all(INTERVAL - jitter - 1e-6 <= gap <= INTERVAL + jitter + 1e-6 for gap in gaps)
    assert len(runs) == count  # one run per interval, no fewer
    assert len(set(gaps)) > count // 2  # and the jitter is fresh each time


def test_a_run_still_going_when_the_next_is_due_is_skipped_and_counted(wall: Wall) -> None:
    runs: list[float] = []
    health = Health()

    async def scenario(jobs: Jobs) -> None:
        jobs.every("poll-cycle", INTERVAL, wall.recorder(runs, busy=15.0), now=True)
        await asyncio.sleep(35)

    lines = wall.run(scenario, health)
    # One instance at a time, as before: the runs due at 10 s and 30 s found one still going.
    assert runs == pytest.approx([0, 20])
    assert [line["problem"] for line in problems(lines)] == ["max_instances"] * 2
    assert health.scheduler_events == {"max_instances": 2}


def test_run_now_and_a_replaced_job_start_a_fresh_schedule(wall: Wall) -> None:
    runs: list[float] = []

    async def scenario(jobs: Jobs) -> None:
        jobs.every("discover", INTERVAL, wall.recorder(runs))
        await asyncio.sleep(14)
        jobs.run_now("discover")  # at 14: runs now, the next one an interval later
        await asyncio.sleep(13)
        jobs.every("discover", 5.0, wall.recorder(runs))  # at 27
        await asyncio.sleep(11)
        assert jobs.has("discover")
        jobs.remove("discover")
        assert not jobs.has("discover")
        await asyncio.sleep(30)

    wall.run(scenario)
    assert runs == pytest.approx([10, 14, 24, 32, 37])


def test_a_stalled_loop_makes_one_late_run_then_keeps_the_schedule(wall: Wall) -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(wall.loop.time())
        if len(runs) == 2:
            wall.loop.virtual += 35.0  # the loop blocked for 35 s (both clocks moved)

    async def scenario(jobs: Jobs) -> None:
        jobs.every("poll-cycle", INTERVAL, job, now=True)
        await asyncio.sleep(65)

    lines = wall.run(scenario)
    assert runs == pytest.approx([0, 10, 45, 50, 60])  # one run for the 3 missed, no burst
    assert steps(lines) == []  # both clocks moved together: not a step
