"""The request rate limit: a sliding log of request starts, one per workspace."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

# Requests can reach the server closer together than they left; this margin keeps the
# limit true where it counts, at the API.
RATE_WINDOW_MARGIN = 0.05


class RateLimiter:
    """At most `rate` request starts in any one-second window (a sliding log, exact).

    Owned by the workspace, not by a client: a client replaced by a reload or a rotated key
    takes the same limiter over, so the window stays true across the replacement.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._starts: collections.deque[_Slot] = collections.deque()
        self.retune(rate)
        self._lock = asyncio.Lock()
        # The event loop's clock by default: it is the one asyncio.sleep waits on.
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep

    @property
    def rate(self) -> float:
        return self._rate

    def retune(self, rate: float) -> None:
        """A new rate that keeps the starts already made: they still count in their window."""
        self._rate = rate
        self._size = max(1, int(rate))
        # Below 1/s, one start per 1/rate seconds.
        self._window = max(1.0, self._size / rate) + RATE_WINDOW_MARGIN
        self._starts = collections.deque(self._starts, maxlen=self._size)

    async def acquire(self) -> _Slot:
        """Wait for a slot; hand it to `finished` when the answer is in."""
        async with self._lock:
            while len(self._starts) == self._size:
                wait = self._starts[0].at + self._window - self._clock()
                if wait <= 0:
                    break
                await self._sleep(wait)
            slot = _Slot(self._clock())
            self._starts.append(slot)
            return slot

    def finished(self, slot: _Slot) -> None:
        """The request surely reached the server by the time its answer is in: count it from
        then. A first request that spends 60 ms connecting would otherwise let the window's
        next request arrive less than a second after it."""
        slot.at = max(slot.at, self._clock())


class _Slot:
    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at
