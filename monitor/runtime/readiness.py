"""Readiness: once every agent's first poll has ended and every discovering workspace has
been listed once, the process is ready, and stays ready for its whole life.

Agents added later (a reload, a discovery) never make it unready: a pod dropped from its
Service while it works would lose its scrapes and fire the "monitor absent" alert.
"""

from __future__ import annotations

from collections.abc import Callable


class Readiness:
    def __init__(self, first_polls_ended: Callable[[], bool], listed: Callable[[], bool]) -> None:
        self._first_polls_ended = first_polls_ended
        self._listed = listed
        self._ready = False

    def __call__(self) -> bool:
        if not self._ready:
            # Listed first: an empty store because the listing failed is not ready.
            self._ready = self._listed() and self._first_polls_ended()
        return self._ready
