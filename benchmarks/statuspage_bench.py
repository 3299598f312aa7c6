"""Latency of the status page and its JSON API at 1,000 and 10,000 agents.

    .venv/bin/python benchmarks/statuspage_bench.py           # 1,000 and 10,000 agents
    .venv/bin/python benchmarks/statuspage_bench.py --agents 500 --rounds 5

The routes the daemon serves (`monitor.web.status.routes.status_routes`) run under uvicorn on
127.0.0.1 in a thread of this process, over a store filled with agents in every state; the
main thread sends requests one after another over one kept-alive connection and prints, per
path, the median and the 90th percentile of the wall-clock latency and the answer's size.
"loop ms" is the median time the same request holds the event loop, measured by calling the
ASGI app directly (no socket): what every other request, scrape and poll waits for meanwhile.

"refresh" is what the page's script fetches on every refresh: whatever paths
`monitor.web.status.routes.REFRESH_PATHS` names, or, on code that predates it, the two JSON
endpoints the old script fetched. It is a script that prints figures, not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/statuspage_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from monitor.config.holder import ConfigHolder  # noqa: E402
from monitor.config.schema import Config  # noqa: E402
from monitor.evaluate import LINK_WITHOUT_EXPIRY, TOKEN_MISSING, Kind, Observation  # noqa: E402
from monitor.model import AgentKey, Health, LinkAnswer, PollFailure, Reason, Target  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.web.status import routes as status_page  # noqa: E402

DAY = 86400.0
NOW = 1_800_000_000.0


def filled_store(agents: int) -> Store:
    """`agents` agents in two workspaces, spread over every state, most of them ok."""
    store = Store()
    keys = [AgentKey("prod" if i % 4 else "eu", f"agent_{i:06d}") for i in range(agents)]
    store.sync(Target(key, f"bot {i} <support>") for i, key in enumerate(keys))
    for i, key in enumerate(keys):
        kind = i % 20
        outcome: LinkAnswer | PollFailure
        if kind == 0:
            outcome = LinkAnswer(Observation(Kind.LINK, NOW - 3600 * (1 + i % 50)), "f")
        elif kind == 1:
            outcome = LinkAnswer(TOKEN_MISSING, None)
        elif kind == 2:
            outcome = PollFailure(Reason.NOT_FOUND, "HTTP 404 agent_not_found", 404)
        elif kind == 3:
            outcome = LinkAnswer(Observation(Kind.LINK, NOW + 60 * (1 + i % 600)), "f")
        elif kind in (4, 5):
            outcome = LinkAnswer(Observation(Kind.LINK, NOW + 2 * DAY + i), "f")
        elif kind == 6:
            outcome = PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503)
        elif kind == 7:
            outcome = LinkAnswer(LINK_WITHOUT_EXPIRY, "f")
        else:
            outcome = LinkAnswer(Observation(Kind.LINK, NOW + 30 * DAY + i * 7.0), "f")
        store.record(outcome, key, NOW - 5 - i % 300)
    return store


def app_for(store: Store) -> Starlette:
    config = Config.model_validate(
        {
            "workspaces": [
                {"name": "prod", "agents": [{"id": "agent_000001"}]},
                {"name": "eu", "agents": [{"id": "agent_000000"}]},
            ],
            "poll": {"interval": "5m", "jitter": "10s"},
        }
    )
    health = Health(last_cycle=NOW - 7, config_reload_at=NOW - 60)
    routes = status_page.status_routes(store, health, ConfigHolder(config), lambda: NOW)
    return Starlette(routes=routes)


class Served:
    """uvicorn serving `app` on a loopback port from a thread of its own."""

    def __init__(self, app: Starlette) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
        # create_server() makes proto-0 sockets: without this, Nagle plus delayed ACKs add
        # about 40 ms to every small answer on a kept-alive connection, hiding the figures.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def timed(connection: http.client.HTTPConnection, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return elapsed, len(body)


def measure(port: int, paths: list[str], rounds: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for path in paths:  # warm up: first-call imports, template compilation
            timed(connection, path)
        times: list[float] = []
        size = 0
        for _ in range(rounds):
            total = 0.0
            size = 0
            for path in paths:
                elapsed, length = timed(connection, path)
                total += elapsed
                size += length
            times.append(total)
    finally:
        connection.close()
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1000,
        "p90_ms": times[min(len(times) - 1, int(len(times) * 0.9))] * 1000,
        "bytes": size,
    }


async def _in_loop(app: Starlette, target: str) -> float:
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{target}: HTTP {message['status']}")

    start = time.perf_counter()
    await app(scope, receive, send)
    return time.perf_counter() - start


def loop_ms(app: Starlette, paths: list[str], rounds: int) -> float:
    async def run() -> list[float]:
        for path in paths:
            await _in_loop(app, path)
        totals = []
        for _ in range(rounds):
            total = 0.0
            for path in paths:
                total += await _in_loop(app, path)
            totals.append(total)
        return totals

    return statistics.median(asyncio.run(run())) * 1000


def scenarios(agents: int) -> dict[str, list[str]]:
    refresh = list(getattr(status_page, "REFRESH_PATHS", ("/api/v1/agents", "/api/v1/status")))
    target = f"agent_{agents - 3:06d}"  # near the end of the list, in state ok
    return {
        "page /": ["/"],
        f"page /?q={target}": [f"/?q={target}"],
        "refresh (" + " + ".join(refresh) + ")": refresh,
        # The reviewer's crafted filter: 100 one-letter words, each matching nearly every agent.
        "page /?q=" + "e%20" * 3 + "... (e x100)": ["/?q=" + "e%20" * 100],
        "/api/v1/status": ["/api/v1/status"],
        "/api/v1/agents": ["/api/v1/agents"],
        "/api/v1/agents?q=" + target: [f"/api/v1/agents?q={target}"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--rounds", type=int, default=20, help="requests per path and size")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    args = parser.parse_args()
    print(f"code: {Path(status_page.__file__).parents[3]}", flush=True)
    print(
        f"{'agents':>7}  {'what':<44} {'median ms':>10} {'p90 ms':>8} {'loop ms':>8} {'bytes':>10}"
    )
    for agents in args.agents:
        store = filled_store(agents)
        with Served(app_for(store)) as served:
            for name, paths in scenarios(agents).items():
                if args.only and args.only not in name:
                    continue
                figures = measure(served.port, paths, args.rounds)
                in_loop = loop_ms(app_for(store), paths, args.rounds)
                print(
                    f"{agents:>7}  {name:<44} {figures['median_ms']:>10.1f} "
                    f"{figures['p90_ms']:>8.1f} {in_loop:>8.1f} {figures['bytes']:>10}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
