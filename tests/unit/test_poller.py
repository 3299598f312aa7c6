"""A cycle's polls go through a fixed set of workers, paced when asked, none after the deadline."""

from __future__ import annotations

import asyncio

import pytest

from monitor.runtime.cycle import paced


def run_paced(items: list[int], workers: int, step: float) -> tuple[list[int], int, list[float]]:
    started: list[int] = []
    times: list[float] = []
    busy = 0
    most = 0

    async def job(item: int) -> None:
        nonlocal busy, most
        loop = asyncio.get_running_loop()
        started.append(item)
        times.append(loop.time())
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.001)
        busy -= 1

    async def main() -> None:
        times.append(asyncio.get_running_loop().time())
        await paced(items, job, workers=workers, step=step)

    asyncio.run(main())
    return started, most, times


def test_every_item_once_in_order_and_never_more_than_the_workers() -> None:
    started, most, _ = run_paced(list(range(200)), workers=8, step=0)
    assert started == list(range(200))
    assert most == 8


def test_items_are_released_no_earlier_than_their_turn() -> None:
    _, most, times = run_paced(list(range(10)), workers=4, step=0.01)
    start, job_times = times[0], times[1:]
    assert all(t >= start + i * 0.01 for i, t in enumerate(job_times))
    assert most <= 4


@pytest.mark.parametrize("items", [[], [1]])
def test_empty_and_single_batches(items: list[int]) -> None:
    started, _, _ = run_paced(items, workers=64, step=0.5)
    assert started == items


def test_a_deadline_cancels_the_whole_cycle() -> None:
    async def slow(_: int) -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        async with asyncio.timeout(0.05):
            await paced(list(range(100)), slow, workers=4, step=0)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_nothing_is_started_after_until() -> None:
    from tests.fakeclock import FakeClockLoop

    started: list[int] = []

    async def job(item: int) -> None:
        started.append(item)
        await asyncio.sleep(0.01)

    async def main() -> None:
        until = asyncio.get_running_loop().time() + 0.035
        await paced(list(range(100)), job, workers=1, step=0, until=until)

    loop = FakeClockLoop()
    try:
        loop.run(main())
    finally:
        loop.close()
    assert started == [0, 1, 2, 3]
