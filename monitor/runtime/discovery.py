"""Discovery: the agents each discovering workspace's key can list, shared by `run` and
`check`. Every workspace is listed on its own, at the same time as the others and under a
deadline; a failed listing is logged and counted, and the last good list is kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from monitor.config.holder import ConfigHolder
from monitor.config.schema import DiscoverSettings
from monitor.elevenlabs.pool import ApiClient, ClientPool
from monitor.model import AgentSummary, Health, PollFailure, Reason, Target
from monitor.runtime.targets import listed_targets

log = structlog.get_logger("monitor")

# A listing must end before the next one is due, and never run for hours whatever the interval
# (1 day at most): a cursor that never ends, one slow page after another, would otherwise
# hold a workspace's list (and `check`) for good.
LISTING_SHARE = 0.9  # of poll.discovery_interval
LISTING_DEADLINE_CAP = 3600.0
INTERNAL_ERROR = "internal_error"  # the reason of a listing that raised (a bug): not an API's


def listing_deadline(discovery_interval: float) -> float:
    """Seconds a workspace's listing may take."""
    return min(discovery_interval * LISTING_SHARE, LISTING_DEADLINE_CAP)


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
        # Which workspaces fail, and why, is Health's: `health.discovery_failing`.

    async def list_all(self) -> bool:
        """List every discovering workspace once, all at the same time, each under the
        deadline; True if any workspace's list changed. One listing that fails, overruns
        or raises never holds up or cancels another.

        The current settings are asked again after each listing: a reload may have switched
        a workspace off (or removed it) while its listing ran.
        """
        current = self._settings.current
        seconds = listing_deadline(current.config.poll.discovery_interval)
        listings = []
        for workspace in current.workspaces:
            client = self._clients.get(workspace.name)
            wanted = workspace.discovery
            if wanted is not None and client is not None:
                listings.append(self._list(workspace.name, client, seconds, wanted))
        changed = await asyncio.gather(*listings)
        return any(changed)

    async def _list(
        self, workspace: str, client: ApiClient, seconds: float, wanted: DiscoverSettings
    ) -> bool:
        """One workspace's listing (filtered as `wanted` says), judged; True if its list
        changed."""
        # The client logs what it skips: its lines name their workspace through this (each
        # listing runs in a task of its own, with its own copy of the context).
        with structlog.contextvars.bound_contextvars(workspace=workspace):
            try:
                async with asyncio.timeout(seconds):
                    listing: list[AgentSummary] | PollFailure = await client.list_agents(
                        wanted.listing_filter()
                    )
            except TimeoutError:
                listing = PollFailure(
                    Reason.TIMEOUT, f"the listing did not end within {seconds:g}s"
                )
            except Exception as exc:  # a bug: this workspace fails, the others go on
                if self._dropped(workspace, wanted):
                    return False
                self._failed(workspace, INTERNAL_ERROR, type(exc).__name__, crashed=True)
                return False
        if workspace not in self._settings.current.discovering:
            return False
        if self._dropped(workspace, wanted):
            return False
        if isinstance(listing, PollFailure):
            self._failed(workspace, listing.reason.value, listing.detail)
            return False
        health = self._health
        health.discovery_failing.pop(workspace, None)
        found = listed_targets(workspace, listing, wanted.labels_from_tags)
        health.discovered[workspace] = len(found)
        health.discovery_last_success[workspace] = self._clock()
        if found == self.found.get(workspace):
            return False
        self.found[workspace] = found
        return True

    def _dropped(self, workspace: str, wanted: DiscoverSettings) -> bool:
        """A reload changed this workspace's discovery settings while its listing ran: the
        listing answers the old filters, so it is dropped (neither a success nor a failure);
        the reload asked for a new listing, which runs as soon as this one ends."""
        now = next(
            (w.discovery for w in self._settings.current.workspaces if w.name == workspace), None
        )
        if now == wanted:
            return False
        log.info("discovery_result_dropped", workspace=workspace, reason="settings_changed")
        return True

    def _failed(self, workspace: str, reason: str, detail: str, *, crashed: bool = False) -> None:
        """A failed listing: the last good list kept, the error counted and shown."""
        if workspace not in self._settings.current.discovering:
            return
        health = self._health
        health.discovery_failing[workspace] = reason
        where = (workspace, reason)
        health.discovery_errors[where] = health.discovery_errors.get(where, 0) + 1
        log.error(
            "discovery_failed", workspace=workspace, reason=reason, detail=detail, exc_info=crashed
        )

    def keep_only(self, discovering: Iterable[str]) -> None:
        """Forget workspaces that no longer discover (or no longer exist), their series too."""
        keep = set(discovering)
        self.found = {k: v for k, v in self.found.items() if k in keep}
        health = self._health
        health.discovered = {k: v for k, v in health.discovered.items() if k in keep}
        health.discovery_errors = {k: v for k, v in health.discovery_errors.items() if k[0] in keep}
        health.discovery_last_success = {
            k: v for k, v in health.discovery_last_success.items() if k in keep
        }
        health.discovery_failing = {k: v for k, v in health.discovery_failing.items() if k in keep}

    def listed(self, discovering: Iterable[str]) -> bool:
        """Every one of these workspaces has been listed successfully at least once."""
        return all(name in self._health.discovered for name in discovering)
