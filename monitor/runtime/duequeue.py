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
# The heap may hold stale entries (a key set again, dropped) besides the live ones, up to as
# many as there are live ones and this many more; then it is rebuilt from the live ones.
STALE_SLACK = 16


class DueQueue(Generic[_K]):
    """A heap with lazy deletion, bounded: setting a key again pushes a new entry and leaves
    the old one stale, to be skipped when it comes up; once the stale entries outnumber the
    live ones (and `STALE_SLACK`), the heap is rebuilt from the live ones. So memory stays
    O(keys) however often due times move (an expiry that moves on every poll), and a set
    costs O(log n), amortised.
    """

    def __init__(self, fire: Callable[[list[_K]], None], clock: Callable[[], float]) -> None:
        """`fire` gets the keys that are due; `clock` is the wall clock due times are in."""
        self._fire = fire
        self._clock = clock
        # key -> its live entry, the very tuple in the heap (held once: 10,000 agents are
        # 10,000 entries); any other entry in the heap is stale.
        self._live: dict[_K, tuple[float, int, _K]] = {}
        self._heap: list[tuple[float, int, _K]] = []
        self._order = 0  # ties broken by insertion, so keys need not be comparable
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def __len__(self) -> int:
        return len(self._live)

    def set(self, key: _K, due: float | None) -> None:
        """`key` is due at `due` (wall time), or never."""
        if due is None:
            self.drop(key)
            return
        live = self._live.get(key)
        if live is not None and live[0] == due:
            return
        self._order += 1
        entry = self._live[key] = (due, self._order, key)
        heapq.heappush(self._heap, entry)
        self._compact()
        self._arm(due)

    def drop(self, key: _K) -> None:
        if self._live.pop(key, None) is not None:
            self._compact()

    def clear(self) -> None:
        self._live.clear()
        self._heap.clear()
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _compact(self) -> None:
        if len(self._heap) <= 2 * len(self._live) + STALE_SLACK:
            return
        # O(n), after at least n/2 stale entries came in: O(1) a set or drop, amortised.
        self._heap = list(self._live.values())
        heapq.heapify(self._heap)

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
            entry = heapq.heappop(self._heap)
            key = entry[2]
            if self._live.get(key) is entry:
                del self._live[key]
                due.append(key)
        try:
            if due:
                self._fire(due)
        finally:  # a `fire` that raises must not leave every later key without a timer
            while self._heap and self._live.get(self._heap[0][2]) is not self._heap[0]:
                heapq.heappop(self._heap)  # stale entries
            if self._heap:
                self._arm(self._heap[0][0])
