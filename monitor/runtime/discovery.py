"""Discovery: the agents each discovering workspace's key can list, shared by `run` and
`check`. A failed listing is logged and counted, and the last good list is kept."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from monitor.config.holder import ConfigHolder
from monitor.elevenlabs.pool import ClientPool
from monitor.model import Health, Target
from monitor.runtime.targets import listed_targets

log = structlog.get_logger("monitor")


class Discovery:
    def __init__(
        self,
        clients: ClientPool,
        health: Health,
        settings: ConfigHolder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = clients
        self._health = health
        self._settings = settings
        self._clock = clock
        self.found: dict[str, list[Target]] = {}
        self.failed: set[str] = set()  # workspaces whose last listing failed

    async def list_all(self) -> bool:
        """List every discovering workspace once; True if any workspace's list changed.

        The current settings are asked again after each listing: a reload may have switched
        a workspace off (or removed it) while its listing ran.
        """
        changed = False
        for workspace in self._settings.current.workspaces:
            client = self._clients.get(workspace.name)
            if not workspace.discover or client is None:
                continue
            # The client logs the rows it skips: they name their workspace through this.
            with structlog.contextvars.bound_contextvars(workspace=workspace.name):
                listing = await client.list_agents()
            if workspace.name not in self._settings.current.discovering:
                continue
            if not isinstance(listing, list):
                self.failed.add(workspace.name)
                errors = self._health.discovery_errors
                where = (workspace.name, listing.reason.value)
                errors[where] = errors.get(where, 0) + 1
                log.error(
                    "discovery_failed",
                    workspace=workspace.name,
                    reason=listing.reason.value,
                    detail=listing.detail,
                )
                continue
            self.failed.discard(workspace.name)
            found = listed_targets(workspace.name, listing)
            self._health.discovered[workspace.name] = len(found)
            self._health.discovery_last_success[workspace.name] = self._clock()
            if found != self.found.get(workspace.name):
                self.found[workspace.name] = found
                changed = True
        return changed

    def keep_only(self, discovering: Iterable[str]) -> None:
        """Forget workspaces that no longer discover (or no longer exist), their series too."""
        keep = set(discovering)
        self.found = {k: v for k, v in self.found.items() if k in keep}
        self.failed &= keep
        health = self._health
        health.discovered = {k: v for k, v in health.discovered.items() if k in keep}
        health.discovery_errors = {k: v for k, v in health.discovery_errors.items() if k[0] in keep}
        health.discovery_last_success = {
            k: v for k, v in health.discovery_last_success.items() if k in keep
        }

    def listed(self, discovering: Iterable[str]) -> bool:
        """Every one of these workspaces has been listed successfully at least once."""
        return all(name in self._health.discovered for name in discovering)
