"""An event loop on a fake clock: when nothing is ready to run, time jumps to the next timer,
so an hour of scheduling runs in milliseconds, exactly and repeatably.

`loop.time()` (what asyncio.sleep, timeouts and call_later use) is virtual; `loop.wall()`
is the matching Unix time, the clock handed to the monitor. APScheduler 3 reads the wall
clock through `datetime.now()` and takes no clock, so `apscheduler_on()` points the
`datetime` its modules use at the loop.

Only for code that waits on the loop's timers: real I/O (a loopback server, a thread) runs
in real time, and the clock would jump past it.
"""

from __future__ import annotations

import asyncio
import datetime
import selectors
from collections.abc import Coroutine, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import structlog
import structlog.testing

EPOCH = 1_800_000_000.0  # 2027-01-15: any fixed instant will do

_T = TypeVar("_T")


class _JumpingSelector(selectors.DefaultSelector):
    loop: FakeClockLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O (a thread's answer) can come
            return super().select(None)
        self.loop.virtual += timeout
        return []


class FakeClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = EPOCH) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self.virtual = 0.0
        self.start = start

    def time(self) -> float:
        return self.virtual

    def wall(self) -> float:
        return self.start + self.virtual

    def run(self, main: Coroutine[Any, Any, _T]) -> _T:
        return self.run_until_complete(main)


@contextmanager
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClockLoop]:
    loop = FakeClockLoop()
    asyncio.set_event_loop(loop)
    apscheduler_on(loop, monkeypatch)
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def apscheduler_on(loop: FakeClockLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    import apscheduler.executors.base
    import apscheduler.schedulers.base
    import apscheduler.triggers.interval

    class FakeDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> FakeDatetime:
            moment = datetime.datetime.fromtimestamp(loop.wall(), tz or datetime.UTC)
            return cls(*moment.timetuple()[:6], moment.microsecond, moment.tzinfo)

    modules: Mapping[str, Any] = {
        "schedulers": apscheduler.schedulers.base,
        "executors": apscheduler.executors.base,
        "triggers": apscheduler.triggers.interval,
    }
    for module in modules.values():
        monkeypatch.setattr(module, "datetime", FakeDatetime)


@contextmanager
def wall_stamped_logs(loop: FakeClockLoop) -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log line while it runs, stamped `at` with the loop's fake wall clock: what a
    test of on-time alerts compares with the instants they are due."""

    def stamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["at"] = loop.wall()
        return event

    structlog.reset_defaults()
    with structlog.testing.capture_logs(processors=[stamp]) as lines:
        yield lines
