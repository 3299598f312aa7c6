"""The running monitor, wired: which piece feeds which, and what a reload hands each one.

No process concerns here (signals, the HTTP server: see daemon.py), so that a test can build
the whole runtime in-process, on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from monitor import logs
from monitor.alerts import AlertLog, WorkspaceAlerts
from monitor.config.holder import ConfigHolder
from monitor.config.keys import KeyReader
from monitor.config.schema import Config
from monitor.elevenlabs.pool import ClientFactory, ClientPool, http_clients, wanted_clients
from monitor.fleet import workspace_health
from monitor.model import AgentKey, Health, Target
from monitor.runtime.cycle import SPREAD_SHARE, Cycle
from monitor.runtime.discovery import Discovery
from monitor.runtime.jobs import Jobs
from monitor.runtime.ontime import OnTime
from monitor.runtime.poller import Poller
from monitor.runtime.readiness import Readiness
from monitor.runtime.reload import Applied, Reloader
from monitor.runtime.targets import Shard, resolve_targets
from monitor.store import Store
from monitor.web.metrics import Metrics

log = structlog.get_logger("monitor")

SHUTDOWN_GRACE = 5.0  # seconds given to in-flight work after SIGTERM
WATCH_INTERVAL = 2.0  # seconds between looks at the config and key files


class Runtime:
    def __init__(
        self,
        config: Config,
        read_key: KeyReader,
        *,
        config_path: Path | None = None,
        shard: Shard | None = None,
        clock: Callable[[], float] = time.time,
        make_client: ClientFactory | None = None,
    ) -> None:
        self.settings = ConfigHolder(config)
        self._read_key = read_key
        self.shard = shard
        self.clock = clock
        self.health = Health(config_reload_at=clock())
        self.serving = config.server  # bound once, by the daemon at start: a reload keeps it
        self.store = Store()
        self.alerts = AlertLog(self.settings)
        self.workspace_alerts = WorkspaceAlerts(self.settings)
        self.metrics = Metrics(self.store, self.health, self.settings, clock)
        self.clients = ClientPool(make_client or http_clients(self.metrics.poll_duration.observe))
        self.ontime = OnTime(self.store, self.alerts, self.settings, clock)
        self.poller = Poller(self.store, self.clients, clock, on_verdict=self.ontime.evaluate)
        self.cycle = Cycle(
            # Archived agents are polled by the exposure sweep, at the discovery interval.
            self.store.live_keys,
            self.poller.poll,
            self.poller.judge,
            self.clients.workers,
            health=self.health,
            clock=clock,
        )
        self.discovery = Discovery(self.clients, self.health, self.settings, clock)
        self._sweeping = False  # an exposure sweep's polls are running
        self.ready = Readiness(self.store, self.discovery, self.settings)
        self.jobs = Jobs(self.health, clock)
        self.reloader = (
            Reloader(
                config_path,
                read_key,
                self.settings,
                self.apply,
                health=self.health,
                clock=clock,
            )
            if config_path is not None
            else None
        )

    @property
    def config(self) -> Config:
        """The running config (a reload swaps it, with everything derived from it)."""
        return self.settings.current.config

    # --- start and stop ----------------------------------------------------------------------

    def start(self) -> None:
        """Open the clients, watch the configured agents, and start the jobs (the first cycle
        and the first listing run at once)."""
        keys = {w.name: self._read_key(w) for w in self.settings.current.workspaces}
        self._open_clients(keys)
        self.store.sync(self._targets())
        self.ready.open()
        self.jobs.start()
        self._schedule(first=True)

    async def stop(self) -> None:
        await self.jobs.stop(SHUTDOWN_GRACE)
        self.ontime.queue.close()
        await self.clients.aclose()

    def _schedule(self, *, first: bool) -> None:
        settings = self.settings.current
        poll = settings.config.poll
        # The first cycle runs now; on a reload the trigger picks the next time.
        self.jobs.every("poll-cycle", poll.interval, self.poll_cycle, jitter=poll.jitter, now=first)
        # Every workspace is listed at the discovery interval: a discovering one for its
        # agents, any one for their usage and the archived agents (Discovery.list_all).
        listed_yet = self.jobs.has("discover")
        self.jobs.every(
            "discover", poll.discovery_interval, self.discover, now=first or not listed_yet
        )
        if self.reloader is not None and not self.jobs.has("watch-files"):
            self.jobs.every("watch-files", WATCH_INTERVAL, self.reloader.check_files)

    # --- jobs --------------------------------------------------------------------------------

    async def poll_cycle(self) -> None:
        await self.cycle.run(self.config.poll.interval, spread=self.config.poll.spread)
        # Once a cycle, not per poll: the verdict reads every agent's record.
        names = [w.name for w in self.settings.current.workspaces]
        failing = self.health.discovery_failing
        self.workspace_alerts.update(workspace_health(self.store.snapshot(), names, failing))

    async def discover(self) -> None:
        """Refresh the agents of every discovering workspace, what the listings say of every
        agent's use, and poll the archived agents' links (the exposure sweep)."""
        changed = await self.discovery.list_all()
        # Usage first: an agent the sync adds starts archived or not, before its first poll.
        for key in self.store.set_usage(self.discovery.usage()):
            self.ontime.evaluate(key)  # archived or not decides which alerts it may raise
        if changed:
            self._sync_targets()
        self._sweep_archived()

    def _sweep_archived(self) -> None:
        """Poll every archived agent once, at the discovery interval, those just found too
        (within the interval: no archived link waits for the live agents' first polls);
        one sweep at a time."""
        keys = self.store.archived_keys()
        if not keys or self._sweeping:
            return
        self._sweeping = True
        self.jobs.spawn(self._archived_polls(keys))

    async def _archived_polls(self, keys: list[AgentKey]) -> None:
        try:
            # Spread over the interval, not a burst: thousands of archived links would
            # otherwise take the rate limit from the live agents' cycle all at once.
            interval = self.config.poll.discovery_interval
            await self.cycle.sweep(keys, interval, interval * SPREAD_SHARE)
        finally:
            self._sweeping = False

    def _targets(self) -> list[Target]:
        discovery = self.discovery
        return resolve_targets(
            self.settings.current, discovery.found, self.shard, archived=discovery.archived
        )

    def _sync_targets(self) -> list[AgentKey]:
        added, removed = self.store.sync(self._targets())
        self.ontime.forget(removed)
        if added or removed:
            log.info(
                "agents_changed", added=len(added), removed=len(removed), agents=len(self.store)
            )
        archived = set(self.store.archived_keys())
        live = [k for k in added if k not in archived]
        if live:
            # Their first polls now, through the workers (discovery may add 10,000 at once);
            # archived ones are the exposure sweep's, spread over the discovery interval.
            self.jobs.spawn(self.cycle.sweep(live, self.config.poll.interval))
        return added

    # --- reload ------------------------------------------------------------------------------

    async def reload(self, cause: str) -> bool:
        if self.reloader is None:
            log.warning("config_reload_skipped", cause=cause, reason="no config file (demo)")
            return False
        return await self.reloader.reload(cause)

    def apply(self, config: Config, keys: dict[str, str]) -> Applied:
        """Make a new, valid config current, and act on what changed; keep what is known.
        What a running process cannot change (the server) is reported as not applied."""
        previous = self.settings.swap(config)
        old, current = previous.config, self.settings.current
        if config.logging != old.logging:
            logs.configure(config.logging.level, config.logging.format)
        self._open_clients(keys)
        self.discovery.keep_only(current.discovering)
        self.store.set_usage(self.discovery.usage())  # evaluated again below, with the rest
        self._sync_targets()
        if config.poll != old.poll or current.discovering != previous.discovering:
            self._schedule(first=False)
        was = {w.name: w.discovery for w in previous.workspaces}
        if any(w.discovery not in (None, was.get(w.name)) for w in current.workspaces):
            # A workspace that starts discovering, or changes its filters or labels from
            # tags, is listed now, not a discovery_interval later.
            self.jobs.run_now("discover")
        self.ontime.evaluate_all()
        fields = {"agents": len(self.store)}
        # Against the server that runs, not the previous config: put back, it applies whole.
        moved = [
            f"server.{name}"
            for name in type(config.server).model_fields
            if getattr(config.server, name) != getattr(self.serving, name)
        ]
        if not moved:
            return Applied(fields)
        detail = f"{', '.join(moved)} changed: kept the running server until a restart"
        return Applied(fields, not_applied=("server",), detail=detail)

    def _open_clients(self, keys: dict[str, str]) -> None:
        for key in keys.values():
            logs.register_secret(key)
        share = self.shard.count if self.shard else 1
        self.clients.update(wanted_clients(list(self.settings.current.workspaces), keys, share))
