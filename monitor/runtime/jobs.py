"""The interval jobs (poll cycles, discovery, the file watch) on APScheduler, with the tasks
shutdown must cancel and await, and scheduler trouble counted."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.model import Health

log = structlog.get_logger("monitor")

Job = Callable[[], Awaitable[object]]

_PROBLEMS = {
    EVENT_JOB_ERROR: "error",
    EVENT_JOB_MISSED: "missed",
    EVENT_JOB_MAX_INSTANCES: "max_instances",
}


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        # A bug in one task must not go unseen.
        log.error("task_crashed", error=type(exc).__name__)


class Jobs:
    def __init__(self, health: Health, clock: Callable[[], float]) -> None:
        self._health = health
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=datetime.UTC)
        self._scheduler.add_listener(
            self._on_problem, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._stopping

    def start(self) -> None:
        self._scheduler.start()

    def every(
        self, name: str, seconds: float, job: Job, *, jitter: float = 0.0, now: bool = False
    ) -> None:
        """Run `job` every `seconds` (first at once with `now`), replacing a job of that name.

        One instance at a time, missed runs coalesced into one (no pile-up after a pause),
        and a grace of the interval so loop lag never silently drops a run.
        """
        start = {"next_run_time": self._at(self._clock())} if now else {}
        self._scheduler.add_job(
            self._tracked(job, name),
            IntervalTrigger(seconds=seconds, jitter=jitter or None),
            id=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
            **start,
        )

    def has(self, name: str) -> bool:
        return self._scheduler.get_job(name) is not None

    def run_now(self, name: str) -> None:
        if self.has(name):
            self._scheduler.modify_job(name, next_run_time=self._at(self._clock()))

    def remove(self, name: str) -> None:
        if self.has(name):
            self._scheduler.remove_job(name)

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """A one-off task that shutdown cancels and awaits like a job.

        The coroutine is the task itself (no wrapper): a task cancelled before its first
        step then closes it, where a wrapper left it never awaited (a RuntimeWarning on a
        SIGHUP just before SIGTERM). Once shutdown has begun, it is closed unstarted.
        """
        if self._stopping:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(_report_crash)
        self._track(task)

    async def stop(self, grace: float) -> None:
        """Stop scheduling, cancel what runs, and give it `grace` seconds to end."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

    @staticmethod
    def _at(timestamp: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tracked(self, job: Job, name: str) -> Callable[[], Awaitable[None]]:
        """APScheduler cannot await asyncio jobs on shutdown: their tasks are kept here."""

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - always inside a task here
            self._track(task)
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Cancelled by a clean shutdown: not a job error for APScheduler to report.

        run.__name__ = run.__qualname__ = name
        return run

    def _on_problem(self, event: JobExecutionEvent) -> None:
        name = _PROBLEMS.get(event.code, "other")
        events = self._health.scheduler_events
        events[name] = events.get(name, 0) + 1
        fields: dict[str, Any] = {"job": event.job_id, "problem": name}
        if event.code == EVENT_JOB_ERROR and getattr(event, "exception", None) is not None:
            fields["error"] = type(event.exception).__name__
        log.error("scheduler_problem", **fields)
