"""Discovery: the agents each discovering workspace's key can list, shared by `run` and
`check`. Every workspace is listed on its own, at the same time as the others and under a
deadline; a failed listing is logged and counted, and the last good list is kept.

The listings also say how agents are used (`last_call_time_unix_secs`) and which are archived:
a workspace with configured agents is listed too, only to learn that of them (it adds no
agents), and the archived agents are listed (the exposure sweep: `discover.archived`), so an
archived agent whose link is still live is found. What they say is `usage()`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

import structlog

from monitor.config.holder import ConfigHolder
from monitor.config.schema import DiscoverSettings
from monitor.elevenlabs.pool import ApiClient, ClientPool
from monitor.model import (
    AgentKey,
    AgentSummary,
    Health,
    ListingFilter,
    PollFailure,
    Reason,
    Target,
    Usage,
)
from monitor.runtime.targets import listed_targets

log = structlog.get_logger("monitor")

# A listing must end before the next one is due, and never run for hours whatever the interval
# (1 day at most): a cursor that never ends, one slow page after another, would otherwise
# hold a workspace's list (and `check`) for good.
LISTING_SHARE = 0.9  # of poll.discovery_interval
LISTING_DEADLINE_CAP = 3600.0
INTERNAL_ERROR = "internal_error"  # the reason of a listing that raised (a bug): not an API's
LIVE = "live"  # the listing that tells a non-discovering workspace's usage
ARCHIVED = "archived"  # the listing of archived agents
_GONE = object()  # a workspace a reload removed


class _ListsArchived(Protocol):
    """ElevenLabsClient's listing of the archived agents (`pool.ApiClient` names only the
    live listing, which every client and test fake has)."""

    async def list_agents(
        self, query: ListingFilter | None = None, *, archived: bool = False
    ) -> list[AgentSummary] | PollFailure: ...


@dataclass(frozen=True, slots=True)
class _Failed:
    """A listing that did not end with a list: the API's reason, or ours."""

    reason: str
    detail: str
    crashed: BaseException | None = None  # a bug: logged with its traceback


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
        *,
        usage_failures_level: str = "warning",
    ) -> None:
        self._clients = clients
        # `check` says them at info, below its stderr's level: they cost it no agent.
        self._usage_failures_level = usage_failures_level
        self._health = health
        self._settings = settings
        self._clock = clock
        self.found: dict[str, list[Target]] = {}
        # The archived agents the sweep watches, per discovering workspace (the last good list).
        self.archived: dict[str, list[Target]] = {}
        # Per workspace, agent id -> what a listing said: the live listing's (dropped when it
        # fails: a stale last call must never make a used agent look idle) and the archived
        # one's (kept, as the list it watches is).
        self._live_usage: dict[str, dict[str, Usage]] = {}
        self._archived_usage: dict[str, dict[str, Usage]] = {}
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
            if client is None:
                continue
            wanted = workspace.discovery
            if wanted is not None:
                listings.append(self._list(workspace.name, client, seconds, wanted))
            elif workspace.agents:
                listings.append(self._usage_listing(workspace.name, client, seconds, None))
            if wanted is None or wanted.archived:
                # A discovering workspace's sweep, filtered as its discovery is; a configured
                # one's listing only marks its configured agents that are archived.
                listings.append(
                    self._usage_listing(workspace.name, client, seconds, wanted, archived=True)
                )
        changed = await asyncio.gather(*listings)
        return any(changed)

    async def _fetch(
        self,
        workspace: str,
        client: ApiClient,
        seconds: float,
        query: ListingFilter,
        *,
        archived: bool = False,
    ) -> list[AgentSummary] | _Failed:
        """One listing under the deadline; never raises."""
        # The client logs what it skips: its lines name their workspace through this (each
        # listing runs in a task of its own, with its own copy of the context).
        with structlog.contextvars.bound_contextvars(workspace=workspace):
            try:
                async with asyncio.timeout(seconds):
                    if archived:
                        lister = cast(_ListsArchived, client)
                        listing = await lister.list_agents(query, archived=True)
                    else:
                        listing = await client.list_agents(query)
            except TimeoutError:
                return _Failed(Reason.TIMEOUT.value, f"the listing did not end within {seconds:g}s")
            except Exception as exc:  # a bug: this workspace fails, the others go on
                return _Failed(INTERNAL_ERROR, type(exc).__name__, exc)
        if isinstance(listing, PollFailure):
            return _Failed(listing.reason.value, listing.detail)
        return listing

    async def _list(
        self, workspace: str, client: ApiClient, seconds: float, wanted: DiscoverSettings
    ) -> bool:
        """One workspace's listing (filtered as `wanted` says), judged; True if its list
        changed."""
        listing = await self._fetch(workspace, client, seconds, wanted.listing_filter())
        if isinstance(listing, _Failed) and listing.crashed is not None:
            if not self._dropped(workspace, wanted):
                self._failed(workspace, listing.reason, listing.detail, crashed=listing.crashed)
            return False
        if workspace not in self._settings.current.discovering:
            return False
        if self._dropped(workspace, wanted):
            return False
        if isinstance(listing, _Failed):
            self._live_usage.pop(workspace, None)
            self._failed(workspace, listing.reason, listing.detail)
            return False
        health = self._health
        health.discovery_failing.pop(workspace, None)
        self._live_usage[workspace] = _usage_of(listing, archived=False)
        found = listed_targets(workspace, listing, wanted.labels_from_tags)
        health.discovered[workspace] = len(found)
        health.discovery_last_success[workspace] = self._clock()
        if found == self.found.get(workspace):
            return False
        self.found[workspace] = found
        return True

    async def _usage_listing(
        self,
        workspace: str,
        client: ApiClient,
        seconds: float,
        wanted: DiscoverSettings | None,
        *,
        archived: bool = False,
    ) -> bool:
        """A listing for what it says of use: a non-discovering workspace's live agents
        (`wanted` None), or the archived agents (of a discovering workspace: the sweep,
        filtered as `wanted` says; of another: only to mark its configured agents). True if
        the sweep's list changed. A failure is logged once, when it starts or its reason
        changes, and shown per workspace; it never marks the workspace failing."""
        if wanted is not None:
            query = wanted.listing_filter()
        else:
            own = next(
                (w.agents for w in self._settings.current.workspaces if w.name == workspace), ()
            )
            query = ListingFilter(agent_ids=frozenset(a.id for a in own))
        listing = await self._fetch(workspace, client, seconds, query, archived=archived)
        now = next((w for w in self._settings.current.workspaces if w.name == workspace), _GONE)
        if now is _GONE or getattr(now, "discovery", None) != wanted:
            return False  # a reload removed the workspace or changed its listing meanwhile
        kind = ARCHIVED if archived else LIVE
        usage = self._archived_usage if archived else self._live_usage
        if isinstance(listing, _Failed):
            if not archived:
                usage.pop(workspace, None)  # unknown, not stale: see __init__
            self._usage_failed(workspace, kind, listing)
            return False
        if self._health.usage_failing.pop((workspace, kind), None) is not None:
            log.info("usage_listing_recovered", workspace=workspace, listing=kind)
        if wanted is None:
            configured = {a.id for a in getattr(now, "agents", ())}
            listing = [a for a in listing if a.agent_id in configured]
        usage[workspace] = _usage_of(listing, archived=archived)
        if wanted is None:
            return False
        found = listed_targets(workspace, listing, wanted.labels_from_tags)
        if found == self.archived.get(workspace):
            return False
        self.archived[workspace] = found
        return True

    def _usage_failed(self, workspace: str, kind: str, failure: _Failed) -> None:
        where = (workspace, kind)
        if self._health.usage_failing.get(where) == failure.reason:
            return  # said already: once per change, not once per interval
        self._health.usage_failing[where] = failure.reason
        say = log.info if self._usage_failures_level == "info" else log.warning
        say(
            "usage_listing_failed",
            workspace=workspace,
            listing=kind,
            reason=failure.reason,
            detail=failure.detail,
            exc_info=failure.crashed or False,
        )

    def usage(self) -> dict[AgentKey, Usage]:
        """What the listings say of each agent: the live listing over the archived one (an
        agent unarchived between the two is live: a stale mark must not hide its alerts)."""
        merged: dict[AgentKey, Usage] = {}
        for table in (self._archived_usage, self._live_usage):
            for workspace, agents in table.items():
                merged.update((AgentKey(workspace, i), u) for i, u in agents.items())
        return merged

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

    def _failed(
        self, workspace: str, reason: str, detail: str, *, crashed: BaseException | None = None
    ) -> None:
        """A failed listing: the last good list kept, the error counted and shown."""
        if workspace not in self._settings.current.discovering:
            return
        health = self._health
        health.discovery_failing[workspace] = reason
        where = (workspace, reason)
        health.discovery_errors[where] = health.discovery_errors.get(where, 0) + 1
        log.error(
            "discovery_failed",
            workspace=workspace,
            reason=reason,
            detail=detail,
            exc_info=crashed or False,
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
        self._forget_usage()

    def _forget_usage(self) -> None:
        """Keep what the listings said only where a listing of that kind still runs."""
        workspaces = {w.name: w for w in self._settings.current.workspaces}
        live = {n for n, w in workspaces.items() if w.discover or w.agents}
        swept = {n for n, w in workspaces.items() if w.discovery is None or w.discovery.archived}
        kept = {ARCHIVED: swept, LIVE: {n for n in live if not workspaces[n].discover}}
        self._live_usage = {k: v for k, v in self._live_usage.items() if k in live}
        self._archived_usage = {k: v for k, v in self._archived_usage.items() if k in swept}
        self.archived = {
            k: v for k, v in self.archived.items() if k in swept and workspaces[k].discover
        }
        health = self._health
        health.usage_failing = {
            where: reason
            for where, reason in health.usage_failing.items()
            if where[0] in kept[where[1]]
        }

    def listed(self, discovering: Iterable[str]) -> bool:
        """Every one of these workspaces has been listed successfully at least once."""
        return all(name in self._health.discovered for name in discovering)


def _usage_of(listing: Iterable[AgentSummary], *, archived: bool) -> dict[str, Usage]:
    """Agent id -> its usage, as one listing says."""
    return {a.agent_id: Usage(a.last_call_time_unix_secs, archived) for a in listing}
