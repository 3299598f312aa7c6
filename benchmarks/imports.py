"""RSS of the daemon's libraries, import by import, each step in the same fresh interpreter.

    .venv/bin/python benchmarks/imports.py

Each line is the resident set (VmRSS) after importing one more library, in the order the
daemon loads them, and what that import added. A figure that prints, not a timed test.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

# In the daemon's order; each step imports one more library (and whatever it pulls in).
STEPS = (
    ("asyncio, ssl", ("asyncio", "ssl")),
    ("pydantic", ("pydantic",)),
    ("monitor.config (its models built)", ("monitor.config.schema",)),
    ("yaml", ("yaml",)),
    ("structlog", ("structlog",)),
    ("prometheus_client", ("prometheus_client",)),
    ("apscheduler", ("apscheduler.schedulers.asyncio",)),
    ("httpx", ("httpx",)),
    ("aiohttp", ("aiohttp",)),
    ("httpx_aiohttp", ("httpx_aiohttp",)),
    ("re2", ("re2",)),
    ("starlette, uvicorn", ("starlette.applications", "uvicorn")),
    ("the rest of monitor", ("monitor.runtime.daemon",)),
)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


def child() -> None:
    before = rss_kib()
    print(f"{'interpreter':36} {before / 1024:6.1f} MiB")
    for label, modules in STEPS:
        for module in modules:
            importlib.import_module(module)
        now = rss_kib()
        print(f"{label:36} {now / 1024:6.1f} MiB  +{(now - before) / 1024:.1f}")
        before = now


def main() -> int:
    if sys.argv[1:] == ["_child"]:
        child()
        return 0
    # A fresh interpreter: nothing of this script's own imports counts.
    return subprocess.call([sys.executable, __file__, "_child"])


if __name__ == "__main__":
    sys.exit(main())
