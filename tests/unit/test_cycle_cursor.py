"""The cycle's cursor is per workspace: beside a fast workspace, a slow one that overruns its
deadline still polls every one of its agents in turn. On the fake loop's clock, no sleeping."""

from __future__ import annotations

import asyncio
import math

from structlog.testing import capture_logs
from structlog.typing import EventDict

from monitor.model import AgentKey, Health, PollFailure
from monitor.runtime.cycle import Cycle
from tests.fakeclock import FakeClockLoop

INTERVAL = 10.0  # the deadline is 9 s: one slow worker starts two 4.5 s polls in it
SLOW_POLL = 4.5
FAST_POLL = 0.01
FAST = [AgentKey("fast", f"f{i}") for i in range(10)]
SLOW = [AgentKey("slow", f"s{i}") for i in range(10)]


def polled_per_cycle(
    keys: list[AgentKey], cycles: int, logged: list[EventDict] | None = None
) -> list[set[AgentKey]]:
    """Run `cycles` cycles back to back; the agents each one polled."""
    loop = FakeClockLoop()
    rounds: list[set[AgentKey]] = []
    judged: list[tuple[AgentKey, PollFailure]] = []

    async def poll(key: AgentKey, deadline: float) -> None:
        rounds[-1].add(key)
        await asyncio.sleep(SLOW_POLL if key.workspace == "slow" else FAST_POLL)

    async def main() -> None:
        cycle = Cycle(
            lambda: list(keys),
            poll,
            lambda key, failure: judged.append((key, failure)),
            lambda workspace: 1 if workspace == "slow" else 4,
            health=Health(),
            clock=loop.time,
        )
        for _ in range(cycles):
            rounds.append(set())
            sweep = await cycle.run(INTERVAL, spread=False)
            assert sweep.unfinished == len(SLOW) - 2  # the slow workspace overruns each time

    try:
        with capture_logs() as lines:  # a cycle_overrun line per cycle, expected here
            loop.run(main())
        if logged is not None:
            logged.extend(lines)
    finally:
        loop.close()
    assert judged == []  # nothing was cut: each slow poll ends by the deadline
    return rounds


def never_polled(polled: set[AgentKey]) -> list[str]:
    return sorted(k.agent_id for k in set(SLOW) - polled)


def test_every_slow_agent_is_polled_within_its_share_of_cycles() -> None:
    cycles = math.ceil(len(SLOW) / 2)  # two slow polls fit in a cycle
    for keys in (
        FAST + SLOW,
        SLOW + FAST,
        [k for pair in zip(FAST, SLOW, strict=True) for k in pair],
    ):
        rounds = polled_per_cycle(keys, cycles)
        assert all(set(FAST) <= polled for polled in rounds)  # the fast ones every cycle
        slow_polled = set().union(*rounds) & set(SLOW)
        assert never_polled(slow_polled) == []


def test_the_slow_workspace_keeps_rotating_over_many_cycles() -> None:
    rounds = polled_per_cycle(FAST + SLOW, 20)
    cycles = math.ceil(len(SLOW) / 2)
    for first in range(len(rounds) - cycles + 1):
        window = set().union(*rounds[first : first + cycles])
        assert never_polled(window) == [], f"cycles {first}..{first + cycles - 1}"


def test_an_overrun_says_which_workspace_ran_out_of_time() -> None:
    logged: list[EventDict] = []
    polled_per_cycle(FAST + SLOW, 2, logged)
    overruns = [line for line in logged if line["event"] == "cycle_overrun"]
    assert [o["unfinished_by_workspace"] for o in overruns] == [{"slow": 8}, {"slow": 8}]
