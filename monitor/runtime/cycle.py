"""A poll cycle: every watched agent once, in turn, paced, each with a verdict by the deadline.

Order: each workspace's batch starts where its last cut-short one stopped, so no agent is
always left out. The cursor is per workspace: one shared cursor, moved by every workspace's
polls together, would skip over some of a slow workspace's agents cycle after cycle.
Pacing: each workspace through its own fixed set of workers, spread over the interval when
asked. Deadline: 90% of the interval; no poll starts after it, each poll is handed it (its
client judges a retry that would outlast it now), and a poll still in flight a moment later is
cut and judged `timeout`. A cycle is full when every agent got a verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from monitor.model import AgentKey, Health, PollFailure, Reason

log = structlog.get_logger("monitor")

DEADLINE_SHARE = 0.9  # of the interval: a cycle never runs into the next
SPREAD_SHARE = 0.8  # of the interval: the window a spread cycle's polls are released over
CUT_GRACE = 0.5  # seconds after the deadline before a poll still in flight is cut

_T = TypeVar("_T")


async def paced(
    items: Sequence[_T],
    job: Callable[[_T], Awaitable[None]],
    *,
    workers: int,
    step: float,
    until: float | None = None,
) -> None:
    """Run `job` on every item, at most `workers` at once, item i released no earlier than
    i * step seconds after the start (0: as fast as the workers go), none after `until`
    (event-loop time).

    A fixed set of workers keeps memory flat: 10,000 agents are 64 coroutines in flight,
    not 10,000 tasks waiting for a slot.
    """
    loop = asyncio.get_running_loop()
    workers = max(1, min(workers, len(items)))
    queue: asyncio.Queue[_T | None] = asyncio.Queue(maxsize=workers)

    async def feed() -> None:
        start = loop.time()
        for index, item in enumerate(items):
            delay = start + index * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if until is not None and loop.time() >= until:
                break
            await queue.put(item)
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            if until is None or loop.time() < until:
                await job(item)

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        for _ in range(workers):
            group.create_task(work())


@dataclass(frozen=True, slots=True)
class Sweep:
    """What became of a batch of polls."""

    agents: int
    started: int
    cut: int
    started_by_workspace: Mapping[str, int] = field(default_factory=dict)

    @property
    def unfinished(self) -> int:
        """Agents that got no verdict: never started before the deadline."""
        return self.agents - self.started


Poll = Callable[[AgentKey, float], Awaitable[object]]
Judge = Callable[[AgentKey, PollFailure], object]


class Cycle:
    def __init__(
        self,
        keys: Callable[[], list[AgentKey]],
        poll: Poll,
        judge: Judge,
        workers: Callable[[str], int],
        *,
        health: Health,
        clock: Callable[[], float],
    ) -> None:
        self._keys = keys
        self._poll = poll
        self._judge = judge
        self._workers = workers
        self._health = health
        self._clock = clock
        # Per workspace: polls started since its batch was first polled (read modulo its size).
        self._cursors: dict[str, int] = {}

    async def run(self, interval: float, *, spread: bool) -> Sweep:
        """Poll every watched agent once within the interval's deadline."""
        batches: dict[str, list[AgentKey]] = {}
        for key in self._keys():
            batches.setdefault(key.workspace, []).append(key)
        # Each workspace starts where its last cut-short batch stopped, so no agent is always
        # left out: a slow workspace's rotation is its own, whatever the others poll.
        offsets = {ws: self._cursors.get(ws, 0) % len(batch) for ws, batch in batches.items()}
        keys = [
            key
            for ws, batch in batches.items()
            for key in batch[offsets[ws] :] + batch[: offsets[ws]]
        ]
        started = self._clock()
        # The first cycle fires at once so the monitor is ready quickly; later ones are spread.
        window = interval * SPREAD_SHARE if spread and self._health.last_cycle is not None else 0
        sweep = await self.sweep(keys, interval, window)
        # Rebuilt each cycle: a workspace that left takes its cursor with it.
        self._cursors = {
            ws: offset + sweep.started_by_workspace.get(ws, 0) for ws, offset in offsets.items()
        }
        finished = self._clock()
        self._health.last_cycle_duration = finished - started
        if sweep.unfinished:
            self._health.cycles_overrun += 1
            log.warning(
                "cycle_overrun",
                unfinished=sweep.unfinished,
                agents=sweep.agents,
                # Which workspaces ran out of time: the one to give more time or concurrency.
                unfinished_by_workspace={
                    ws: left
                    for ws, batch in batches.items()
                    if (left := len(batch) - sweep.started_by_workspace.get(ws, 0))
                },
                deadline_seconds=round(interval * DEADLINE_SHARE, 3),
            )
        else:
            # Only a full cycle counts: a stale-data alert on this metric must be able to fire.
            self._health.last_cycle = finished
        log.debug("cycle_finished", agents=sweep.agents, seconds=round(finished - started, 3))
        return sweep

    async def sweep(self, keys: list[AgentKey], interval: float, window: float = 0.0) -> Sweep:
        """Poll `keys` once (a cycle, or the first polls of agents just added)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval * DEADLINE_SHARE
        in_flight: set[AgentKey] = set()
        started: dict[str, int] = {}

        async def poll(key: AgentKey) -> None:
            started[key.workspace] = started.get(key.workspace, 0) + 1
            in_flight.add(key)
            await self._poll(key, deadline)
            in_flight.discard(key)

        by_workspace: dict[str, list[AgentKey]] = {}
        for key in keys:
            by_workspace.setdefault(key.workspace, []).append(key)
        try:
            async with asyncio.timeout_at(deadline + min(CUT_GRACE, interval * 0.05)):
                await asyncio.gather(
                    *(
                        paced(
                            batch,
                            poll,
                            workers=self._workers(workspace),
                            step=window / len(batch),
                            until=deadline,
                        )
                        for workspace, batch in by_workspace.items()
                    )
                )
        except TimeoutError:
            pass
        cut = sorted(in_flight)
        for key in cut:
            self._judge(key, PollFailure(Reason.TIMEOUT, "cut by the cycle's deadline"))
        return Sweep(len(keys), sum(started.values()), len(cut), started)
