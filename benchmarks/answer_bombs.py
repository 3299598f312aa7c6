"""Memory per answer: the real daemon's peak RSS growth when the API answers with a
compression bomb of one, two and three gzip layers (and an unknown coding).

    python benchmarks/answer_bombs.py [--size-mib 1024] [--code PATH]

Each agent first answers normally; once two cycles have passed, the peak RSS (VmHWM) is the
baseline; then every agent answers with its bomb (a few KB that inflate to `--size-mib` MiB),
and the script prints each poll's outcome and the peak growth. `--code` runs another checkout
(for a before/after figure: run the script from inside that checkout, as `python -m monitor`
puts the working directory first); mind the size there: code that inflates does so in memory.
Loopback only; the stand-in and the daemon end with the script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.daemon import Daemon, wait_until  # noqa: E402
from tests.standin import StandIn, encoded, link, zeros_gzipped  # noqa: E402

KEY = "sk_bench_bombs_0123456789"


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--code", type=Path, default=None, help="a checkout to run instead")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    bombs = {
        "gzip1": (zeros_gzipped(size, 1), "gzip"),
        "gzip2": (zeros_gzipped(size, 2), "gzip, gzip"),
        "gzip3": (zeros_gzipped(size, 3), "gzip, gzip, gzip"),
        "unknown": (zeros_gzipped(size, 1), "x-bomb"),
    }
    api = StandIn(KEY)
    for agent in bombs:
        api.set(agent, link("tok_bench", time.time() + 30 * 86400))
    env = {"ELEVENLABS_API_KEY": KEY}
    if args.code is not None:
        env |= {"PYTHONPATH": str(args.code.resolve()), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        agents = "".join(f"  - id: {a}\n" for a in bombs)
        config.write_text(
            f"elevenlabs:\n  base_url: {api.url}\n  max_retries: 0\n  timeout: 30s\n"
            f"agents:\n{agents}poll:\n  interval: 2s\n  jitter: 0\n"
            "server:\n  host: 127.0.0.1\n  port: 0\n"
        )
        daemon = Daemon(config, env).started()
        try:
            wait_until(lambda: api.count() >= 2 * len(bombs), 30, "two cycles")
            baseline = peak_kib(daemon.proc.pid)
            for agent, (body, coding) in bombs.items():
                api.set(agent, encoded(200, body, coding))
            failed = {}
            for agent in bombs:
                line = daemon.wait_for("poll_failed", 120, agent_id=agent)
                failed[agent] = (line["reason"], line["detail"])
            peak = peak_kib(daemon.proc.pid)
        finally:
            daemon.stop(30)
            api.close()
    print(f"code: {args.code or ROOT}   bomb: {args.size_mib} MiB inflated")
    for agent, (body, coding) in bombs.items():
        reason, detail = failed[agent]
        print(f"  {agent:8} {len(body):>7} B  Content-Encoding: {coding:18} -> {reason}: {detail}")
    print(f"peak RSS before the bombs: {baseline / 1024:.1f} MiB")
    print(f"peak RSS after the bombs:  {peak / 1024:.1f} MiB")
    print(f"growth: {(peak - baseline) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    os.environ.pop("MONITOR_CONFIG", None)
    sys.exit(main())
