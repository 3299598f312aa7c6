"""One-off tasks around shutdown: a SIGHUP just before SIGTERM spawns a reload that shutdown
cancels before it starts, or after the jobs stopped; neither may leave a coroutine never
awaited (a RuntimeWarning on stderr)."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from monitor.model import Health
from monitor.runtime.jobs import Jobs


def _unawaited(scenario: str) -> list[str]:
    ran: list[str] = []

    async def reload() -> None:
        ran.append("reload")

    async def main() -> None:
        jobs = Jobs(Health(), lambda: 0.0)
        jobs.start()
        if scenario == "before stop":
            jobs.spawn(reload())  # the SIGHUP ...
            await jobs.stop(1.0)  # ... and SIGTERM in the same loop turn
        else:
            await jobs.stop(1.0)
            jobs.spawn(reload())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert ran == []  # shutdown won: the reload never ran
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("scenario", ["before stop", "after stop"])
def test_a_task_spawned_as_shutdown_begins_is_never_left_unawaited(scenario: str) -> None:
    assert _unawaited(scenario) == []
