"""The daemon: poll cycles, on-time evaluation, discovery, reload and shutdown, wired together."""

from __future__ import annotations

import asyncio
import datetime
import heapq
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor import __version__, logs
from monitor.alerts import AlertLog
from monitor.api import ElevenLabsClient
from monitor.config import Config, ConfigError, WorkspaceConfig, load_config
from monitor.evaluate import Thresholds, evaluate, next_change
from monitor.metrics import Metrics
from monitor.model import AgentKey, Health, PollFailure, Target
from monitor.poller import Poller, client_settings, paced
from monitor.server import HttpServer, build_app
from monitor.statuspage import status_routes
from monitor.store import Store
from monitor.targets import Shard, listed_targets, resolve_targets

log = structlog.get_logger("monitor")

SHUTDOWN_GRACE = 5.0  # seconds given to in-flight work after SIGTERM
CONFIG_WATCH_INTERVAL = 2.0

KeyReader = Callable[[WorkspaceConfig], str]


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


class Monitor:
    def __init__(
        self,
        config: Config,
        read_key: KeyReader,
        *,
        config_path: Path | None = None,
        shard: Shard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._read_key = read_key
        self._config_path = config_path
        self._shard = shard
        self._clock = clock
        self.store = Store()
        self.health = Health(config_reload_at=clock())
        self.alerts = AlertLog(config.alerts.repeat_interval)
        self._thresholds = _thresholds(config)
        self.metrics = Metrics(
            self.store,
            self.health,
            lambda: self._thresholds,
            clock,
            lambda: self.config.metrics.expose_relative,
        )
        self._clients: dict[str, ElevenLabsClient] = {}
        self._retired: list[ElevenLabsClient] = []
        self._client_ids: dict[str, tuple[Any, ...]] = {}
        self._poller = Poller(self.store, self._clients, clock)
        self._discovered: dict[str, list[Target]] = {}
        self._scheduler = AsyncIOScheduler(timezone=datetime.UTC)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wakeup: float | None = None
        self._due_at: dict[AgentKey, float] = {}
        self._due_heap: list[tuple[float, AgentKey]] = []
        self._cursor = 0
        self._config_stat: tuple[int, int, int] | None = None
        self._stopping = asyncio.Event()
        self._server: HttpServer | None = None
        self.address: tuple[str, int] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def start(self) -> None:
        self._open_clients(self.config)
        self.store.sync(self._targets(self.config))
        self._config_stat = self._stat_config()
        pages = (
            status_routes(self.store, self.health, lambda: self.config, self._clock)
            if self.config.server.status_page
            else []
        )
        self._server = HttpServer(
            build_app(self.metrics.render, self._alive, self._ready, pages),
            self.config.server.host,
            self.config.server.port,
            self.config.server.tls,
        )
        self.address = await self._server.start()
        scheme = "https" if self.config.server.tls else "http"
        base = f"{scheme}://{self.address[0]}:{self.address[1]}"
        self._scheduler.add_listener(
            self._on_scheduler_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self._scheduler.start()
        self._schedule_jobs(first_run=True)
        log.info(
            "monitor_started",
            version=__version__,
            address=base,
            metrics=f"{base}/metrics",
            agents=len(self.store),
            workspaces=[w.name for w in self.config.resolved_workspaces()],
            shard=str(self._shard) if self._shard else None,
        )

    async def stop(self) -> None:
        self._stopping.set()  # also when start() failed: cancelled jobs are not errors then
        log.info("monitor_stopping")
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE)
        if self._server is not None:
            await self._server.stop()
        await asyncio.gather(*(c.aclose() for c in [*self._clients.values(), *self._retired]))
        self._clients.clear()
        self._retired.clear()
        log.info("monitor_stopped")

    def _ready(self) -> bool:
        """Every agent polled once, and every discovering workspace listed once: an empty
        store because the listing failed is not ready."""
        listed = all(
            w.name in self.health.discovered
            for w in self.config.resolved_workspaces()
            if w.discover
        )
        return listed and self.store.ready

    def _alive(self) -> bool:
        return bool(self._scheduler.running) and not self._stopping.is_set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- jobs ------------------------------------------------------------------------------

    def _schedule_jobs(self, *, first_run: bool) -> None:
        poll = self.config.poll
        # The first runs are now; on a reload the triggers pick the next time. (Passing
        # next_run_time=None would add the job paused.)
        start = {"next_run_time": _utc(self._clock())} if first_run else {}
        self._scheduler.add_job(
            self._tracked(self.poll_cycle),
            IntervalTrigger(seconds=poll.interval, jitter=poll.jitter or None),
            id="poll-cycle",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            # The default grace of 1 s would silently drop a cycle after any loop lag.
            misfire_grace_time=max(1, int(poll.interval)),
            **start,
        )
        discovering = _discovering(self.config)
        if discovering and (first_run or not self._scheduler.get_job("discover")):
            start = {"next_run_time": _utc(self._clock())}
        if discovering:
            self._scheduler.add_job(
                self._tracked(self.discover),
                IntervalTrigger(seconds=poll.discovery_interval),
                id="discover",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(poll.discovery_interval)),
                **start,
            )
        elif self._scheduler.get_job("discover"):
            self._scheduler.remove_job("discover")
        if self._config_path is not None and not self._scheduler.get_job("watch-config"):
            self._scheduler.add_job(
                self._tracked(self._watch_config),
                IntervalTrigger(seconds=CONFIG_WATCH_INTERVAL),
                id="watch-config",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    def _tracked(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Jobs whose tasks shutdown can cancel and await (APScheduler cannot)."""

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - always inside a task here
            self._tasks.add(task)
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
                # Cancelled by a clean shutdown: not a job error for APScheduler to report.
            finally:
                self._tasks.discard(task)

        run.__name__ = run.__qualname__ = getattr(job, "__name__", "job")
        return run

    def _on_scheduler_event(self, event: JobExecutionEvent) -> None:
        names = {
            EVENT_JOB_ERROR: "error",
            EVENT_JOB_MISSED: "missed",
            EVENT_JOB_MAX_INSTANCES: "max_instances",
        }
        name = names.get(event.code, "other")
        events = self.health.scheduler_events
        events[name] = events.get(name, 0) + 1
        fields: dict[str, Any] = {"job": event.job_id, "problem": name}
        if event.code == EVENT_JOB_ERROR and getattr(event, "exception", None) is not None:
            fields["error"] = type(event.exception).__name__
        log.error("scheduler_problem", **fields)

    # --- polling ---------------------------------------------------------------------------

    async def poll_cycle(self) -> None:
        """Poll every watched agent once, within a deadline shorter than the interval."""
        interval = self.config.poll.interval
        deadline = interval * 0.9
        keys = self.store.agent_keys()
        # Start where the last cut-short cycle stopped, so no agent is always left out.
        offset = self._cursor % len(keys) if keys else 0
        keys = keys[offset:] + keys[:offset]
        started = self._clock()
        # The first cycle fires at once so the monitor is ready quickly; later ones are spread.
        spread = self.config.poll.spread and self.health.last_cycle is not None
        done = 0

        async def poll(key: AgentKey) -> None:
            nonlocal done
            await self.poll_agent(key)
            done += 1

        unfinished = 0
        try:
            async with asyncio.timeout(deadline):
                await self._poll_paced(keys, poll, interval * 0.8 if spread else 0.0)
        except TimeoutError:
            unfinished = len(keys) - done
        self._cursor = offset + done
        finished = self._clock()
        self.health.last_cycle_duration = finished - started
        if unfinished:
            self.health.cycles_overrun += 1
            log.warning(
                "cycle_overrun",
                unfinished=unfinished,
                agents=len(keys),
                deadline_seconds=round(deadline, 3),
            )
        else:
            # Only a full cycle counts: a stale-data alert on this metric must be able to fire.
            self.health.last_cycle = finished
        log.debug("cycle_finished", agents=len(keys), seconds=round(finished - started, 3))

    async def _poll_paced(
        self, keys: list[AgentKey], poll: Callable[[AgentKey], Awaitable[None]], window: float
    ) -> None:
        """Each workspace's agents through that workspace's own workers, so a slow workspace
        never delays another; with a `window`, spread evenly over it."""
        by_workspace: dict[str, list[AgentKey]] = {}
        for key in keys:
            by_workspace.setdefault(key.workspace, []).append(key)

        def workers(workspace: str) -> int:
            client = self._clients.get(workspace)
            return client.settings.max_concurrency if client else 1

        await asyncio.gather(
            *(
                paced(batch, poll, workers=workers(workspace), step=window / len(batch))
                for workspace, batch in by_workspace.items()
            )
        )

    async def poll_agent(self, key: AgentKey) -> None:
        try:
            record = await self._poller.poll(key)
        except Exception as exc:  # a bug must not stop the other agents' polls
            log.error(
                "poll_crashed",
                workspace=key.workspace,
                agent_id=key.agent_id,
                error=type(exc).__name__,
            )
            return
        if record is not None:
            self._evaluate_one(key)

    async def discover(self) -> None:
        """Refresh the list of agents of every workspace with `discover: true`."""
        changed = False
        for workspace in self.config.resolved_workspaces():
            client = self._clients.get(workspace.name)
            if not workspace.discover or client is None:
                continue
            listing = await client.list_agents()
            if not any(
                w.name == workspace.name and w.discover for w in self.config.resolved_workspaces()
            ):
                continue  # a reload switched it off meanwhile
            if isinstance(listing, PollFailure):
                errors = self.health.discovery_errors
                where = (workspace.name, listing.reason.value)
                errors[where] = errors.get(where, 0) + 1
                log.error(
                    "discovery_failed",
                    workspace=workspace.name,
                    reason=listing.reason.value,
                    detail=listing.detail,
                )
                continue
            found = listed_targets(workspace.name, listing)
            self.health.discovered[workspace.name] = len(found)
            if found != self._discovered.get(workspace.name):
                self._discovered[workspace.name] = found
                changed = True
        if changed:
            self._sync_targets()

    def _targets(self, config: Config) -> list[Target]:
        return resolve_targets(config, self._discovered, self._shard)

    def _sync_targets(self) -> None:
        added, removed = self.store.sync(self._targets(self.config))
        self.alerts.forget(removed)
        if added or removed:
            log.info(
                "agents_changed", added=len(added), removed=len(removed), agents=len(self.store)
            )
        for key in removed:
            self._due_at.pop(key, None)
        if added:
            # Through the workers, not a task per agent: discovery may add 10,000 at once.
            self._spawn(self._poll_paced(added, self.poll_agent, 0.0))

    # --- evaluation on the clock ------------------------------------------------------------

    def _evaluate_one(self, key: AgentKey) -> None:
        """Evaluate one agent now, log what it calls for, and remember when it is next due."""
        record = self.store.get(key)
        if record is None:
            self._due_at.pop(key, None)
            return
        now = self._clock()
        self.alerts.observe(record, evaluate(record.observation, now, self._thresholds), now)
        times = [
            t
            for t in (
                next_change(record.observation, now, self._thresholds),
                self.alerts.next_due(key),
            )
            if t is not None
        ]
        due = min(times, default=None)
        if due is None:
            self._due_at.pop(key, None)
        elif self._due_at.get(key) != due:
            # One live entry per agent: a stale one is skipped when it comes up.
            self._due_at[key] = due
            heapq.heappush(self._due_heap, (due, key))
            self._arm(due)

    def evaluate_all(self) -> None:
        """Re-evaluate every agent (after a reload: thresholds may have changed)."""
        self._due_at.clear()
        self._due_heap.clear()
        for key in self.store.agent_keys():
            self._evaluate_one(key)

    def _arm(self, when: float) -> None:
        """Keep one date job at the soonest due agent: a crossing is logged when it happens,
        not at the next poll, at the cost of one job however many agents there are."""
        # Wake-ups are batched into quarter seconds, and never set in the past.
        when = math.ceil(max(when, self._clock()) * 4) / 4 + 0.001
        if (
            self._wakeup is not None
            and self._wakeup <= when
            and self._scheduler.get_job("evaluate") is not None
        ):
            return
        self._wakeup = when
        if not self._scheduler.running:
            return
        self._scheduler.add_job(
            self._tracked(self._on_wakeup),
            DateTrigger(run_date=_utc(when)),
            id="evaluate",
            replace_existing=True,
            # Armed again from inside a run: a second instance must not be skipped.
            max_instances=2,
            misfire_grace_time=None,
        )

    async def _on_wakeup(self) -> None:
        """Evaluate the agents that are due, and only those."""
        self._wakeup = None
        now = self._clock()
        due: list[AgentKey] = []
        while self._due_heap and self._due_heap[0][0] <= now:
            when, key = heapq.heappop(self._due_heap)
            if self._due_at.get(key) == when:
                del self._due_at[key]
                due.append(key)
        for key in due:
            self._evaluate_one(key)
        if self._due_heap:
            self._arm(self._due_heap[0][0])

    # --- reload ----------------------------------------------------------------------------

    def _stat_config(self) -> tuple[int, int, int] | None:
        if self._config_path is None:
            return None
        try:
            st = os.stat(self._config_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _watch_config(self) -> None:
        current = self._stat_config()
        if current is not None and current != self._config_stat:
            await self.reload("file changed")

    async def reload(self, cause: str) -> bool:
        """Load the config again; keep the running one if the new one is bad."""
        if self._config_path is None:
            log.warning("config_reload_skipped", cause=cause, reason="no config file (demo)")
            return False
        self._config_stat = self._stat_config()
        try:
            config = load_config(self._config_path)
            keys = {w.name: self._read_key(w) for w in config.resolved_workspaces()}
        except ConfigError as exc:
            self.health.config_reload_ok = False
            log.error("config_reload_failed", cause=cause, problems=exc.problems)
            return False
        self._apply(config, keys)
        self.health.config_reload_ok = True
        self.health.config_reload_at = self._clock()
        log.info("config_reloaded", cause=cause, agents=len(self.store))
        return True

    def _apply(self, config: Config, keys: dict[str, str]) -> None:
        old = self.config
        self.config = config
        if config.server != old.server:
            log.warning("config_needs_restart", keys="server", detail="kept the running server")
        if config.logging != old.logging:
            logs.configure(config.logging.level, config.logging.format)
        self._open_clients(config, keys)
        self.alerts.repeat_interval = config.alerts.repeat_interval
        self._thresholds = _thresholds(config)
        self._discovered = {
            k: v
            for k, v in self._discovered.items()
            if any(w.name == k and w.discover for w in config.resolved_workspaces())
        }
        self._sync_targets()
        if config.poll != old.poll or _discovering(config) != _discovering(old):
            self._schedule_jobs(first_run=False)
        if _discovering(config) - _discovering(old) and self._scheduler.get_job("discover"):
            # A workspace that starts discovering is listed now, not a discovery_interval later.
            self._scheduler.modify_job("discover", next_run_time=_utc(self._clock()))
        self.evaluate_all()

    def _open_clients(self, config: Config, keys: dict[str, str] | None = None) -> None:
        """A client per workspace, replaced only when its settings or key changed."""
        share = self._shard.count if self._shard else 1
        wanted = {w.name: w for w in config.resolved_workspaces()}
        for name in list(self._clients):
            if name not in wanted:
                self._retire(self._clients.pop(name))
                self._client_ids.pop(name, None)
        for name, workspace in wanted.items():
            key = keys[name] if keys is not None else self._read_key(workspace)
            logs.register_secret(key)
            settings = client_settings(workspace, share)
            identity = (settings, key)
            if self._client_ids.get(name) == identity:
                continue
            if name in self._clients:
                self._retire(self._clients[name])
            self._clients[name] = ElevenLabsClient(
                settings, key, on_request=self.metrics.poll_duration.observe
            )
            self._client_ids[name] = identity

    def _retire(self, client: ElevenLabsClient) -> None:
        """Close a replaced client once its in-flight requests are done."""
        self._retired.append(client)

        async def close_when_idle() -> None:
            await client.aclose_when_idle()
            self._retired.remove(client)

        self._spawn(close_when_idle())


def _discovering(config: Config) -> frozenset[str]:
    """The workspaces that discover their agents."""
    return frozenset(w.name for w in config.resolved_workspaces() if w.discover)


def _thresholds(config: Config) -> Thresholds:
    return Thresholds(config.thresholds.warning, config.thresholds.critical)
