"""Keys with a due time, and one timer at the soonest: 10,000 agents cost one timer.

A plain heap on the event loop's own timer rather than an APScheduler `date` job: APScheduler
3 reads the wall clock through `datetime.now()` and cannot be given another clock, while
the loop's timer follows whatever clock the loop keeps, a test's fake one included.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_K = TypeVar("_K", bound=Hashable)

BATCH = 0.25  # seconds: wake-ups are batched into quarter seconds
BATCH_SLACK = 0.01


class DueQueue(Generic[_K]):
    def __init__(self, fire: Callable[[list[_K]], None], clock: Callable[[], float]) -> None:
        """`fire` gets the keys that are due; `clock` is the wall clock due times are in."""
        self._fire = fire
        self._clock = clock
        self._due_at: dict[_K, float] = {}
        self._heap: list[tuple[float, int, _K]] = []
        self._order = 0  # ties broken by insertion, so keys need not be comparable
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def __len__(self) -> int:
        return len(self._due_at)

    def set(self, key: _K, due: float | None) -> None:
        """`key` is due at `due` (wall time), or never."""
        if due is None:
            self._due_at.pop(key, None)
            return
        if self._due_at.get(key) == due:
            return
        # One live entry per key: a stale one is skipped when it comes up.
        self._due_at[key] = due
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, key))
        self._arm(due)

    def drop(self, key: _K) -> None:
        self._due_at.pop(key, None)

    def clear(self) -> None:
        self._due_at.clear()
        self._heap.clear()
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _arm(self, when: float) -> None:
        # Up to the next quarter second, unless it is a hair past one: a repeat due at
        # 60.001 s must not drift to 60.25, then 120.5...
        when = max(when, math.ceil((when - BATCH_SLACK) / BATCH) * BATCH)
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        self.close()
        loop = asyncio.get_running_loop()
        self._timer_at = when
        # A millisecond late rather than early: early, nothing would be due yet.
        self._timer = loop.call_later(max(0.0, when - self._clock()) + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        now = self._clock()
        due: list[_K] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._due_at.get(key) == when:
                del self._due_at[key]
                due.append(key)
        if due:
            self._fire(due)
        while self._heap and self._due_at.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale entries
        if self._heap:
            self._arm(self._heap[0][0])
