"""The interval jobs (poll cycles, discovery, the file watch) on APScheduler, with the tasks
shutdown must cancel and await, and scheduler trouble counted.

When a job runs is decided on the loop's monotonic clock, never on the wall clock. APScheduler 3
times its triggers and wake-ups with wall-clock datetimes: a backward step of the system clock
(NTP, a resumed VM) held every job back by the size of the step, a forward one fired jobs at once
(early, or into a cycle still running: `max_instances`), and its interval jitter was added to the
previous, already jittered, fire time, so it accumulated. A custom trigger alone cannot fix a
step: a job's wall-clock due time is fixed when it last ran, and after a backward step the
scheduler waits for it, asking the trigger nothing. A watchdog that reschedules on a step can,
but only once it has noticed (a polling period and a tolerance to tune), and jitter would still
need the trigger. So each job has one loop timer (`call_at`: the clock of asyncio's own sleeps
and timeouts) at start + k*interval + a fresh jitter, and APScheduler keeps the rest: the
registry, the executor with one instance at a time, and the events counted below. Its trigger
never makes a job due (its next fire time is the year 9999); the timer makes it due with a run
time in 2000, due whatever the wall clock says. Wall time only stamps results; here it is
watched for a step, which is logged (`clock_step`) and changes nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import random
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
from apscheduler.triggers.base import BaseTrigger

from monitor.model import Health

log = structlog.get_logger("monitor")

Job = Callable[[], Awaitable[object]]

# A run time before any real wall clock: a job given it is due whatever the clock says.
_DUE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
# A fire time no wall clock reaches: APScheduler never makes a job due by itself.
_DORMANT = datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC)

# How far the wall clock may move against the loop's before it counts as a step: a second, plus
# 0.1 % of the time between two looks (twice the fastest slew ntpd makes).
STEP_TOLERANCE = 1.0
SLEW_TOLERANCE = 0.001

_PROBLEMS = {
    EVENT_JOB_ERROR: "error",
    EVENT_JOB_MISSED: "missed",
    EVENT_JOB_MAX_INSTANCES: "max_instances",
}


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        # A bug in one task must not go unseen.
        log.error("task_crashed", error=type(exc).__name__)


class _OnLoopClock(BaseTrigger):  # type: ignore[misc]  # APScheduler is untyped
    """Never due by itself: the job's loop timer makes it due (see the module's docstring)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime.datetime | None, now: datetime.datetime
    ) -> datetime.datetime:
        return _DORMANT

    def __str__(self) -> str:
        return "loop clock"


class _Plan:
    """One job's times on the loop's clock: run k is due at start + k*interval + fresh jitter."""

    def __init__(self, start: float, interval: float, jitter: float) -> None:
        self.start = start
        self.interval = interval
        self.jitter = jitter
        self.timer: asyncio.TimerHandle | None = None

    def due(self, slot: int) -> float:
        # Drawn afresh for each run, from the slot's own time: jitter never adds up.
        return self.start + slot * self.interval + random.random() * self.jitter  # noqa: S311

    def following(self, slot: int, now: float) -> int:
        """The slot after `slot`; after a stalled loop, the first one still ahead (one run for
        all it missed, never a burst)."""
        return max(slot + 1, math.floor((now - self.start) / self.interval) + 1)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Jobs:
    def __init__(self, health: Health, clock: Callable[[], float]) -> None:
        self._health = health
        self._clock = clock  # the wall clock: only watched for steps
        self._scheduler = AsyncIOScheduler(timezone=datetime.UTC)
        self._scheduler.add_listener(
            self._on_problem, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self._plans: dict[str, _Plan] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[str] = set()  # jobs with a run going
        self._rerun: set[str] = set()  # running jobs to run again as soon as their run ends
        self._stopping = False
        self._wall_offset: tuple[float, float] | None = None  # (wall - loop time, at loop time)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._stopping

    def start(self) -> None:
        self._scheduler.start()

    def every(
        self, name: str, seconds: float, job: Job, *, jitter: float = 0.0, now: bool = False
    ) -> None:
        """Run `job` every `seconds` (first at once with `now`), replacing a job of that name.

        The schedule starts now on the loop's clock: run k at k*`seconds` plus a fresh jitter
        in [0, `jitter`). One instance at a time: a run due while the last one still goes is
        skipped and counted (`max_instances`). A loop stalled past several runs makes one.
        With `now`, a job of that name still running runs again as soon as that run ends.
        """
        self._forget(name)
        again = now and name in self._running
        if again:
            self._rerun.add(name)
        self._scheduler.add_job(
            self._tracked(job, name),
            _OnLoopClock(),
            id=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # lateness is the loop timer's business
            next_run_time=_DUE if now and not again else _DORMANT,
        )
        self._plan(name, _Plan(asyncio.get_running_loop().time(), seconds, jitter))

    def has(self, name: str) -> bool:
        return self._scheduler.get_job(name) is not None

    def run_now(self, name: str) -> None:
        """Run `name` now; its next run is an interval later (its schedule starts again).

        A run still going is not doubled (APScheduler would refuse it: `max_instances`), and
        its result may predate the cause of this call: the job runs again as soon as it ends.
        """
        plan = self._plans.get(name)
        if plan is None or not self.has(name):
            return
        if name in self._running:
            self._rerun.add(name)
            return
        self._start_now(name, plan)

    def _start_now(self, name: str, plan: _Plan) -> None:
        self._scheduler.modify_job(name, next_run_time=_DUE)
        self._forget(name)
        self._plan(name, _Plan(asyncio.get_running_loop().time(), plan.interval, plan.jitter))

    def remove(self, name: str) -> None:
        self._forget(name)
        self._rerun.discard(name)
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
        for name in list(self._plans):
            self._forget(name)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

    # --- timing on the loop's clock ---------------------------------------------------------

    def _plan(self, name: str, plan: _Plan) -> None:
        self._plans[name] = plan
        self._arm(name, plan, 1)

    def _arm(self, name: str, plan: _Plan, slot: int) -> None:
        loop = asyncio.get_running_loop()
        plan.timer = loop.call_at(plan.due(slot), self._fire, name, plan, slot)

    def _forget(self, name: str) -> None:
        plan = self._plans.pop(name, None)
        if plan is not None:
            plan.cancel()

    def _fire(self, name: str, plan: _Plan, slot: int) -> None:
        """Slot `slot` of `name` is due: APScheduler runs it, and the next slot is armed."""
        if self._stopping or self._plans.get(name) is not plan:
            return  # replaced, removed or stopping (its timer was cancelled too)
        now = asyncio.get_running_loop().time()
        self._watch_wall(now)
        self._scheduler.modify_job(name, next_run_time=_DUE)
        self._arm(name, plan, plan.following(slot, now))

    def _watch_wall(self, now: float) -> None:
        """Log a step of the wall clock against the loop's. Only said: no timing depends on it."""
        offset = self._clock() - now
        if self._wall_offset is not None:
            before, seen_at = self._wall_offset
            step = offset - before
            if abs(step) > STEP_TOLERANCE + SLEW_TOLERANCE * (now - seen_at):
                events = self._health.scheduler_events
                events["clock_step"] = events.get("clock_step", 0) + 1
                log.warning("clock_step", step=round(step, 3))
        self._wall_offset = (offset, now)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tracked(self, job: Job, name: str) -> Callable[[], Awaitable[None]]:
        """APScheduler cannot await asyncio jobs on shutdown: their tasks are kept here."""

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - always inside a task here
            self._track(task)
            self._running.add(name)
            # A done callback, not `finally`: it runs after APScheduler's own (added when it
            # made the task), so the run no longer counts as an instance when it runs again.
            task.add_done_callback(lambda _: self._ended(name))
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Cancelled by a clean shutdown: not a job error for APScheduler to report.

        run.__name__ = run.__qualname__ = name
        return run

    def _ended(self, name: str) -> None:
        """A run of `name` ended: run it again now if that was asked while it ran."""
        self._running.discard(name)
        if name not in self._rerun:
            return
        self._rerun.discard(name)
        plan = self._plans.get(name)
        if self._stopping or plan is None or not self.has(name):
            return
        self._start_now(name, plan)

    def _on_problem(self, event: JobExecutionEvent) -> None:
        name = _PROBLEMS.get(event.code, "other")
        events = self._health.scheduler_events
        events[name] = events.get(name, 0) + 1
        fields: dict[str, Any] = {"job": event.job_id, "problem": name}
        if event.code == EVENT_JOB_ERROR and getattr(event, "exception", None) is not None:
            fields["error"] = type(event.exception).__name__
        log.error("scheduler_problem", **fields)
