"""The due-time queue's memory stays flat whatever the due times do (issue 21: 300 agents whose
expiry moved on every poll held 13,500 heap entries after 90 s), and it still fires exactly the
live keys, at their latest due times, batched into quarter seconds.

On the fake clock of tests/fakeclock.py: no sleeps, no wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config
from monitor.evaluate import Kind, Observation
from monitor.model import LinkAnswer, PollOutcome
from monitor.runtime.duequeue import DueQueue
from monitor.runtime.wiring import Runtime
from tests.conftest import config_data
from tests.fakeapi import FakeApi, Script
from tests.fakeclock import EPOCH, FakeClockLoop, fake_clock

DAY = 86400.0
AGENTS = 300
# Live entries plus at most as many stale ones, and a little slack: whatever the pattern.
SLACK = 16


def bound(live: int) -> int:
    return 2 * live + SLACK


def held(queue: DueQueue[Any]) -> int:
    """Entries the queue stores, stale ones included: what its memory is proportional to."""
    return len(queue._heap)


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClockLoop]:
    with fake_clock(monkeypatch) as loop:
        yield loop


def moved_later(queue: DueQueue[str], now: float, n: int) -> None:
    """300 keys, each moved 45 times to a later due time that never comes within the test."""
    queue.set(f"agent{n % AGENTS}", now + 30 * DAY + n // AGENTS)


def moved_earlier_then_dropped(queue: DueQueue[str], now: float, n: int) -> None:
    """One key due earlier every time (a token rotated to a shorter life), one set and gone."""
    queue.set("a", now + DAY - n)
    queue.set("b", now + DAY + n)
    queue.drop("b")


@pytest.mark.parametrize(
    ("pattern", "live"), [(moved_later, AGENTS), (moved_earlier_then_dropped, 1)]
)
def test_a_key_set_again_and_again_holds_one_entry_not_one_per_set(
    loop: FakeClockLoop, pattern: Callable[[DueQueue[str], float, int], None], live: int
) -> None:
    queue: DueQueue[str] = DueQueue(lambda _: None, loop.wall)
    peak = 0

    async def main() -> None:
        nonlocal peak
        for n in range(45 * AGENTS):
            pattern(queue, loop.wall(), n)
            peak = max(peak, held(queue))
            if n % AGENTS == AGENTS - 1:
                await asyncio.sleep(2)  # fake time: a poll interval
        queue.close()

    loop.run(main())
    assert len(queue) == live
    assert peak <= bound(live), f"{peak} entries held for {live} keys"


def test_300_agents_whose_expiry_moves_on_every_poll_keep_the_queue_flat(
    loop: FakeClockLoop,
) -> None:
    """The finding as the daemon meets it: every poll answers a new expiry (a token rotated
    on each read), 300 agents, a 2 s interval, 90 s."""
    api = FakeApi()
    answered = 0

    def moving() -> Script:
        async def answer() -> PollOutcome:
            nonlocal answered
            answered += 1
            at = loop.wall() + 30 * DAY + answered
            return LinkAnswer(Observation(Kind.LINK, at), f"digest-{answered}")

        return answer

    agents = [f"agent{i}" for i in range(AGENTS)]
    for agent in agents:
        api.set(agent, moving())
    data = config_data("http://127.0.0.1:9", agents, poll={"interval": "2s", "jitter": 0})
    runtime = Runtime(
        Config.model_validate(data), lambda _: "sk_fake", clock=loop.wall, make_client=api.client
    )
    peak = 0

    async def main() -> None:
        nonlocal peak
        runtime.start()
        for _ in range(90):
            await asyncio.sleep(1)
            peak = max(peak, held(runtime.ontime.queue))
        await runtime.stop()

    loop.run(main())
    assert answered >= 40 * AGENTS  # the expiry really moved on every poll
    assert len(runtime.ontime.queue) == AGENTS
    assert peak <= bound(AGENTS), f"{peak} entries held for {AGENTS} agents"


# --- the property: exactly the live keys fire, at their latest due times --------------------

KEYS = "abcdef"
STEP = 0.125  # due times on an eighth-second grid: half of them are batched up
LATE = 0.002  # the timer is set a millisecond late; float rounding at 1.8e9 s is far less
Op = tuple[Any, ...]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), st.integers(0, 8 * 40)),
        st.tuples(st.just("never"), st.sampled_from(KEYS)),
        st.tuples(st.just("drop"), st.sampled_from(KEYS)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("advance"), st.integers(1, 6)),
        st.tuples(st.just("again"), st.sampled_from(KEYS), st.integers(0, 8 * 5)),
        # An expiry that moves on every poll: many sets of one key, later or earlier each time.
        st.tuples(
            st.just("moves"),
            st.sampled_from(KEYS),
            st.integers(0, 8 * 40),
            st.integers(-3, 3),
            st.integers(1, 60),
        ),
    ),
    max_size=80,
)


def batched(due: float) -> float:
    """The documented batching: up to the next quarter second, unless a hair past one."""
    return max(due, math.ceil((due - 0.01) / 0.25) * 0.25)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_exactly_the_live_keys_fire_at_their_latest_due_times(steps: list[Op]) -> None:
    loop = FakeClockLoop()
    # `fire` runs in a timer callback, whose exceptions the loop would only log.
    raised: list[BaseException] = []
    loop.set_exception_handler(lambda _, context: raised.append(context["exception"]))
    live: dict[str, tuple[float, float]] = {}  # the model: key -> (latest due, when set)
    again: dict[str, float] = {}  # keys set again from inside `fire`, as OnTime does

    def fire(keys: list[str]) -> None:
        now = loop.wall()
        assert len(set(keys)) == len(keys)
        for key in keys:
            assert key in live, f"{key} fired but is not queued"
            due, set_at = live.pop(key)
            assert due <= now, f"{key} fired {due - now} s early"
            assert now <= max(batched(due), set_at) + LATE, f"{key} fired late"
        # Batching: every key due by now fired in this one call.
        assert not [k for k, (due, _) in live.items() if due <= now]
        for key in keys:
            if key in again:  # due again a little later: the next alert repeat
                put(key, now + again[key])

    queue: DueQueue[str] = DueQueue(fire, loop.wall)

    def put(key: str, due: float | None) -> None:
        if due is None:
            live.pop(key, None)
        elif key not in live or live[key][0] != due:
            live[key] = (due, loop.wall())
        queue.set(key, due)

    def overdue() -> list[str]:
        now = loop.wall()
        return [k for k, (due, at) in live.items() if max(batched(due), at) + LATE < now]

    async def main() -> None:
        for step in steps:
            kind = step[0]
            if kind == "set":
                put(step[1], EPOCH + step[2] * STEP)
            elif kind == "never":
                put(step[1], None)
            elif kind == "drop":
                live.pop(step[1], None)
                queue.drop(step[1])
            elif kind == "clear":
                live.clear()
                queue.clear()
            elif kind == "moves":
                _, key, start, step_, count = step
                for i in range(count):
                    put(key, EPOCH + max(0, start + i * step_) * STEP)
                    assert held(queue) <= bound(len(live))
            elif kind == "again":
                again[step[1]] = step[2] * STEP + STEP  # never 0: that would fire forever
            else:
                await asyncio.sleep(step[1])
                assert not overdue()
            if raised:
                raise raised[0]
            assert len(queue) == len(live)
            assert held(queue) <= bound(len(live))
        again.clear()
        await asyncio.sleep(60)  # everything still queued comes due and fires
        if raised:
            raise raised[0]
        assert not live
        assert held(queue) == 0
        queue.close()

    try:
        loop.run(main())
    finally:
        loop.close()
