"""A real step of the wall clock under libfaketime: a real loop, APScheduler's own
datetime.now(), and polling that goes on by the loop's monotonic clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tooling import require_library

HOUR = 3600.0

# --- the same under libfaketime: a real loop, APScheduler's own datetime.now() -------------


STEPPED = """
import asyncio, json, sys, time
from monitor.model import Health
from monitor.runtime.jobs import Jobs

async def main(step_file, step):
    loop = asyncio.get_running_loop()
    runs = []

    async def poll():
        runs.append(loop.time())

    health = Health()
    jobs = Jobs(health, time.time)
    jobs.start()
    jobs.every("poll-cycle", 0.2, poll, now=True)
    await asyncio.sleep(0.5)
    stepped_at, wall = loop.time(), time.time()
    with open(step_file, "w") as out:
        out.write(f"{step:+.0f}")
    wall_step = time.time() - wall
    await asyncio.sleep(1.5)
    await jobs.stop(1.0)
    after = [run - stepped_at for run in runs if run > stepped_at]
    print(json.dumps({"wall_step": wall_step, "after": after, "events": health.scheduler_events}))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


@pytest.mark.parametrize("step", [-HOUR, HOUR])
def test_under_libfaketime_a_real_step_leaves_polling_on_the_loop_clock(
    tmp_path: Path, step: float
) -> None:
    libfaketime = require_library("libfaketime.so.1", "faketime")
    step_file = tmp_path / "faketime"
    step_file.write_text("+0")
    env = {
        **os.environ,
        "LD_PRELOAD": libfaketime,
        "FAKETIME_TIMESTAMP_FILE": str(step_file),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",  # the loop's clock stays real
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    done = subprocess.run(
        [sys.executable, "-c", STEPPED, str(step_file), str(step)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["wall_step"] == pytest.approx(step, abs=5)  # the wall clock did step
    # About 7 runs were due in the 1.5 s after it; a loaded machine may lag, never stop.
    assert len(seen["after"]) >= 4
    assert seen["events"] == {"clock_step": 1}
