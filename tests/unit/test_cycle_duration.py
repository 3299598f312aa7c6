"""`elevenlabs_link_monitor_last_cycle_duration_seconds` is the last cycle's, full or cut
(issue 21, finding 3).

Its help said "the last full poll cycle" while a cycle cut at its deadline wrote it too. It is
kept as the last cycle's duration, whatever its end: a cut cycle lasts about its deadline, and
that is the value a graph of cycle durations must show while cycles overrun (a gauge frozen
at the last full cycle would hide it). The help says so. `last_cycle_timestamp_seconds` stays
full cycles only, so that a staleness alert on it can fire. On the fake loop's clock.
"""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric
from structlog.testing import capture_logs

from monitor.model import AgentKey, Health, PollFailure
from monitor.runtime.cycle import CUT_GRACE, DEADLINE_SHARE, Cycle
from monitor.store import Store
from monitor.web.ownmetrics import MonitorCollector
from tests.fakeclock import FakeClockLoop
from tests.settings import holder

INTERVAL = 100.0  # the deadline is 90 s; one worker polls the agents one after another
KEYS = [AgentKey("default", f"a{i}") for i in range(3)]
DURATION = "elevenlabs_link_monitor_last_cycle_duration_seconds"
TIMESTAMP = "elevenlabs_link_monitor_last_cycle_timestamp_seconds"


def run_cycles(poll_seconds: list[float]) -> tuple[Health, list[float]]:
    """One cycle per entry, each poll taking that long; the loop time each cycle ended."""
    loop = FakeClockLoop()
    health = Health()
    ends: list[float] = []
    now = {"seconds": 0.0}  # each poll's length in the cycle under way

    async def poll(key: AgentKey, deadline: float) -> None:
        await asyncio.sleep(now["seconds"])

    def judge(key: AgentKey, failure: PollFailure) -> None:
        pass  # a poll cut at the deadline: its verdict is not what this test is about

    async def main() -> None:
        cycle = Cycle(lambda: list(KEYS), poll, judge, lambda _: 1, health=health, clock=loop.time)
        for seconds in poll_seconds:
            now["seconds"] = seconds
            await cycle.run(INTERVAL, spread=False)
            ends.append(loop.time())

    try:
        with capture_logs():  # a cut cycle logs cycle_overrun: expected here
            loop.run(main())
    finally:
        loop.close()
    return health, ends


def gauges(health: Health) -> dict[str, Metric]:
    return {m.name: m for m in MonitorCollector(Store(), health, holder()).collect()}


def test_a_cut_cycle_writes_its_duration_and_the_help_says_full_or_cut() -> None:
    # A full cycle, then one cut at its deadline: its second poll is cut, its third never starts.
    health, ends = run_cycles([2.0, 50.0])
    assert health.cycles_overrun == 1
    metrics = gauges(health)

    duration = metrics[DURATION]
    # The cut cycle's: it ran to its deadline (plus the grace before in-flight polls are cut).
    (sample,) = duration.samples
    cut_at = INTERVAL * DEADLINE_SHARE
    assert cut_at <= sample.value <= cut_at + CUT_GRACE
    assert duration.documentation == (
        "How long the last poll cycle took, whether every poll ended or it was cut short "
        "at its deadline (then about 90% of poll.interval)."
    )

    # The timestamp stays the last full cycle's, and its help says so.
    timestamp = metrics[TIMESTAMP]
    (sample,) = timestamp.samples
    assert sample.value == ends[0]
    assert "full" in timestamp.documentation


def test_a_full_cycle_writes_its_duration() -> None:
    health, ends = run_cycles([50.0, 2.0])  # cut, then full: the full one's duration
    assert health.cycles_overrun == 1
    (sample,) = gauges(health)[DURATION].samples
    assert sample.value == 3 * 2.0
    (sample,) = gauges(health)[TIMESTAMP].samples
    assert sample.value == ends[1]
