"""Readiness: once every agent's first poll has ended and every discovering workspace has
been listed once, the process is ready, and stays ready for its whole life.

Agents added later (a reload, a discovery) never make it unready: a pod dropped from its
Service while it works would lose its scrapes and fire the "monitor absent" alert.
"""

from __future__ import annotations

from monitor.config.holder import ConfigHolder
from monitor.runtime.discovery import Discovery
from monitor.store import Store


class Readiness:
    def __init__(self, store: Store, discovery: Discovery, settings: ConfigHolder) -> None:
        self._store = store
        self._discovery = discovery
        self._settings = settings
        self._open = False  # not before start: an empty store, not yet given its agents
        self._ready = False

    def open(self) -> None:
        """The store has been given its agents: readiness may now be judged."""
        self._open = True

    def __call__(self) -> bool:
        if not self._ready and self._open:
            # Listed first: an empty store because the listing failed is not ready.
            discovering = self._settings.current.discovering
            self._ready = self._discovery.listed(discovering) and self._store.ready
        return self._ready
