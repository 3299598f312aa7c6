"""Soak: the real daemon for 10 minutes against the simulated API, with faults injected.

    python benchmarks/soak.py [--agents 1000] [--interval 10] [--duration 600]

Prints RSS at the end of the warm-up and at the end, requests made, errors by reason and
cycles completed. The simulated API runs in its own process (`bench.py _sim`-style) with a
mix of faults: 5xx, 429 with Retry-After, answers that are not JSON, answers slower than the
timeout, 404s and missing links (see `monitor.elevenlabs.simulator.soak_agents`). Loopback only; the
run and every child process end by themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (
    API_KEY,
    KEY_ENV,
    ROOT,
    Children,
    Daemon,
    Http,
    memory_kib,
    metric_values,
    start_daemon,
)

WARM_UP = 60.0


def serve(args: argparse.Namespace) -> int:
    """The simulated API with faults, in this process; prints {"port": N} once listening."""
    import uvicorn

    from monitor.elevenlabs.simulator import SimulatedApi, soak_agents

    sim = SimulatedApi(soak_agents(args.agents), API_KEY, latency=args.latency)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_soak/stats":
            body = json.dumps({"requests": sim.requests}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await sim.app(scope, receive, send)

    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none")
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def config_file(directory: Path, base_url: str, args: argparse.Namespace) -> Path:
    config = {
        "elevenlabs": {
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "timeout": "2s",
            "max_concurrency": 32,
            "max_requests_per_second": 1000,
            "max_retries": 1,
        },
        "agents": [{"id": f"agent_{i:06d}", "name": f"bot-{i}"} for i in range(args.agents)],
        "poll": {"interval": args.interval, "jitter": 1, "spread": False},
        "alerts": {"repeat_interval": "1m"},
        "server": {"host": "127.0.0.1", "port": 0},
        # debug adds one `cycle_finished` line per cycle, which is how cycles are counted.
        "logging": {"level": "debug", "format": "json"},
    }
    path = directory / "soak.yaml"
    path.write_text(json.dumps(config))
    return path


def errors_by_reason(daemon: Daemon) -> dict[str, float]:
    _, body = daemon.get("/metrics")
    totals: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("elevenlabs_agent_link_poll_errors_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            totals[reason] = totals.get(reason, 0) + float(line.rsplit(" ", 1)[1])
    return dict(sorted(totals.items()))


def soak(args: argparse.Namespace) -> dict[str, Any]:
    children = Children()
    try:
        proc = children.start(
            [
                sys.executable,
                __file__,
                "_sim",
                "--agents",
                str(args.agents),
                "--latency",
                str(args.latency),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        port = int(json.loads(proc.stdout.readline())["port"])
        with tempfile.TemporaryDirectory() as tmp:
            daemon = start_daemon(
                children, config_file(Path(tmp), f"http://127.0.0.1:{port}", args)
            )
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            rss_warm = 0.0
            while (elapsed := time.monotonic() - started) < args.duration:
                daemon.alive()
                rss = memory_kib(daemon.proc.pid, "VmRSS") / 1024
                samples.append((elapsed, rss))
                if not rss_warm and elapsed >= min(WARM_UP, args.duration / 4):
                    rss_warm = rss
                    print(f"warm-up done at {elapsed:.0f} s: RSS {rss:.1f} MB", flush=True)
                time.sleep(5)  # a sampling period, not synchronisation
            rss_end = memory_kib(daemon.proc.pid, "VmRSS") / 1024
            hwm = memory_kib(daemon.proc.pid, "VmHWM") / 1024
            stats = Http(port)
            status, body, _ = stats.get("/_soak/stats")
            stats.close()
            requests = json.loads(body)["requests"] if status == 200 else None
            errors = errors_by_reason(daemon)
            _, metrics = daemon.get("/metrics")
            overruns = metric_values(
                metrics.decode(), "elevenlabs_link_monitor_cycles_overrun_total"
            )
            cycles = len(daemon.events("cycle_finished"))
            alive = daemon.proc.poll() is None
            code = children.stop(daemon.proc)
        return {
            "agents": args.agents,
            "interval_s": args.interval,
            "duration_s": args.duration,
            "rss_after_warm_up_mb": round(rss_warm, 1),
            "rss_end_mb": round(rss_end, 1),
            "rss_growth_pct": round((rss_end - rss_warm) / rss_warm * 100, 1) if rss_warm else None,
            "peak_rss_mb": round(hwm, 1),
            "requests": requests,
            "errors_by_reason": errors,
            "cycles_completed": cycles,
            "cycles_overrun": overruns[0] if overruns else None,
            "alive_at_end": alive,
            "exit_code_after_sigterm": code,
            "rss_samples_mb": [round(r, 1) for _, r in samples[:: max(1, len(samples) // 20)]],
        }
    finally:
        children.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=["_sim"], help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="poll interval, seconds")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--latency", type=float, default=0.005, help="the API's added latency")
    args = parser.parse_args(argv)
    if args.role == "_sim":
        return serve(args)
    os.environ.setdefault(KEY_ENV, API_KEY)
    result = soak(args)
    print(json.dumps(result, indent=2))
    growth = result["rss_growth_pct"]
    ok = growth is not None and growth <= 10 and result["alive_at_end"]
    print(f"RSS growth after warm-up: {growth}% (target <= 10%): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
