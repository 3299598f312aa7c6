"""Benchmark the daemon at scale against the built-in simulated API, in separate processes.

    .venv/bin/python benchmarks/bench.py            # full run: 1,000 and 10,000 agents (< 10 min)
    .venv/bin/python benchmarks/bench.py --quick    # 200 and 1,000 agents (< 1 min)
    .venv/bin/python benchmarks/bench.py --json     # the figures as one JSON object on stdout

Processes: the simulated API (uvicorn, one process, 20 ms of added latency per answer), the real
daemon (`python -m monitor run --config <tmp>`), the official SDK's async client in a loop (for
comparison), and py-spy attached to the daemon for a profile. Each is measured from outside
through /proc, so their CPU never mixes. Progress goes to stderr; the figures to stdout.

The script re-invokes itself for the child roles `_sim` and `_sdk`; those are internal.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import compileall
import contextlib
import datetime
import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/bench.py` from anywhere
    sys.path.insert(0, str(ROOT))
# Where the measured daemon's code is: this checkout, or another one (--daemon-root: the code
# before a change, measured against the same simulated API on the same machine).
DAEMON_ROOT = ROOT
# The interpreter the daemon runs on (--daemon-python): `make bench` gives it a virtualenv
# of the runtime dependencies only, as the image has; in the development one structlog
# imports rich and pygments, some 5 MiB the image never holds.
DAEMON_PYTHON = sys.executable

LATENCY = 0.020  # seconds the simulated API adds to every answer
CONCURRENCY = 64
RATE = 10_000  # requests per second: the config's maximum, far above 64 in flight at 20 ms
API_KEY = "bench-not-a-secret-key"  # the simulator's key, loopback only
KEY_ENV = "BENCH_ELEVENLABS_API_KEY"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Alert scenario: a link crosses warning, then critical, then expires, 1 s apart.
ALERT_WARNING = 2.0
ALERT_CRITICAL = 1.0
# What Prometheus itself sends when it scrapes.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
TARGETS = {
    "cycle_ratio": 1.2,
    "sdk_ratio": 2.0,
    "scrape_p99_ms": 50.0,
    "scrape_prometheus_p99_ms": 100.0,
    "rss_mb": 90.0,  # issue 22
    "rss_one_agent_mb": 50.0,
    "alert_delay_s": 1.0,
}
MIB = 1024 * 1024


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure such as VmHWM (peak RSS) or VmRSS, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for name in ("httpx", "httpcore", "h11", "uvicorn", "starlette", "prometheus-client"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    for name in ("elevenlabs", "py-spy", "sniffio", "uvloop", "httptools"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
    }


# --- child role: the simulated API ---------------------------------------------------------------


def serve_sim(args: argparse.Namespace) -> int:
    """The simulated API in this process, on 127.0.0.1; prints {"port": N} once it listens."""
    import uvicorn

    from monitor.elevenlabs.simulator import Behaviour, SimAgent, SimulatedApi, many_agents

    agents = many_agents(args.agents)
    crossing: SimAgent | None = None
    if args.cross_at is not None:
        crossing = SimAgent("agent_crossing", "crossing-bot", Behaviour.EXPIRES)
        agents.append(crossing)
    sim = SimulatedApi(agents, API_KEY, latency=args.latency)
    if crossing is not None:
        # The simulator's expiry is int(started + expires_in): land it on cross_at + warning.
        crossing.expires_in = args.cross_at + args.warning + 0.5 - sim.started

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/stats":
            body = json.dumps(
                {"requests": sim.requests, "cpu": cpu_seconds(os.getpid()), "pid": os.getpid()}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await sim.app(scope, receive, send)

    # Plain uvicorn rather than monitor.web.server.HttpServer: that one caps concurrency at 64
    # connections + tasks (503 beyond), which a 64-wide client plus this script would exceed.
    # httptools and uvloop (the `bench` extra) make the stand-in cheaper per request, so that
    # it can keep up with 64 requests in flight at 20 ms (3,200 requests/s) on its own core.
    fast = _fast_server() and not args.plain
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools" if fast else "h11",
        ws="none",
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    print(json.dumps({"port": sock.getsockname()[1], "fast": fast}), flush=True)
    loop_factory = None
    if fast:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(server.serve(sockets=[sock]))
    return 0


def _fast_server() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("httptools", "uvloop"))


# --- child role: the official SDK in a loop -------------------------------------------------------


def run_sdk(args: argparse.Namespace) -> int:
    """What a user would write instead: AsyncElevenLabs and a semaphore. Prints one JSON line."""
    import httpx
    from elevenlabs.client import AsyncElevenLabs

    async def main() -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if args.pool:
            # The same pool the daemon keeps: as many kept-alive connections as in flight.
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            kwargs["httpx_client"] = httpx.AsyncClient(limits=limits, timeout=10)
        client = AsyncElevenLabs(base_url=args.base_url, api_key=API_KEY, **kwargs)
        semaphore = asyncio.Semaphore(args.concurrency)
        errors: collections.Counter[str] = collections.Counter()
        ok = 0

        async def one(agent_id: str) -> None:
            nonlocal ok
            async with semaphore:
                try:
                    await client.conversational_ai.agents.link.get(agent_id=agent_id)
                    ok += 1
                except Exception as exc:  # counted, reported
                    errors[type(exc).__name__] += 1

        ids = [f"agent_{i:06d}" for i in range(args.agents)]
        cpu0, wall0 = cpu_seconds(os.getpid()), time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        cpu1, wall1 = cpu_seconds(os.getpid()), time.perf_counter()
        return {
            "polls": ok,
            "errors": dict(errors),
            "cpu_s": cpu1 - cpu0,
            "wall_s": wall1 - wall0,
            "vm_hwm_kib": memory_kib(os.getpid(), "VmHWM"),
        }

    print(json.dumps(asyncio.run(main())), flush=True)
    return 0


# --- orchestration: child processes ---------------------------------------------------------------


class Children:
    """Every process this script starts; all are ended on the way out, error or not."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, **kwargs)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int | None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                self.stop(proc)


def own_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


class Http:
    """One kept-alive HTTP/1.1 connection to a loopback server."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.content_type = ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        self._conn.request("GET", path, headers=headers or {})
        response = self._conn.getresponse()
        body = response.read()
        self.content_type = response.getheader("content-type") or ""
        return response.status, body, response.getheader("content-encoding") or ""

    def close(self) -> None:
        self._conn.close()


def wait_until(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    port: int
    fast: bool  # uvicorn with httptools and uvloop rather than h11 and asyncio

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        http_ = Http(self.port, timeout=10)
        try:
            status, body, _ = http_.get("/_bench/stats")
        finally:
            http_.close()
        if status != 200:
            raise RuntimeError(f"simulator stats: HTTP {status}")
        result: dict[str, Any] = json.loads(body)
        return result


def start_sim(
    children: Children,
    agents: int,
    latency: float,
    *,
    cross_at: float | None = None,
    warning: float = ALERT_WARNING,
) -> Sim:
    cmd = own_cmd("_sim", "--agents", str(agents), "--latency", str(latency))
    if cross_at is not None:
        cmd += ["--cross-at", str(cross_at), "--warning", str(warning)]
    proc = children.start(cmd, stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
    ready: dict[str, Any] = {}

    def read() -> None:
        line = proc.stdout.readline() if proc.stdout else b""
        with contextlib.suppress(ValueError):
            ready.update(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    if "port" not in ready:
        raise RuntimeError(f"the simulator did not start (exit {proc.poll()})")
    sim = Sim(proc, int(ready["port"]), bool(ready.get("fast")))
    wait_until(lambda: _answers(sim), 10, "the simulator to answer")
    return sim


def _answers(sim: Sim) -> bool:
    try:
        sim.stats()
    except OSError:
        return False
    return True


@dataclass
class Line:
    seen: float  # time.time() when this script read it
    data: dict[str, Any]


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    lines: list[Line] = field(default_factory=list)
    stderr: bytearray = field(default_factory=bytearray)
    port: int = 0
    cpu_at_start: float = 0.0
    started_at: float = 0.0
    startup_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read_stdout(self) -> None:
        assert self.proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
        for raw in self.proc.stdout:
            seen = time.time()
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"event": "_not_json", "text": raw.decode(errors="replace")}
            if data.get("event") == "monitor_started":
                # As close to the start of the first (burst) cycle as can be seen from outside.
                with contextlib.suppress(OSError):
                    self.cpu_at_start = cpu_seconds(self.proc.pid)
            with self._lock:
                self.lines.append(Line(seen, data))

    def read_stderr(self) -> None:
        assert self.proc.stderr is not None  # noqa: S101 - set by stderr=PIPE
        for raw in self.proc.stderr:
            self.stderr.extend(raw[-4096:])

    def events(self, event: str) -> list[Line]:
        with self._lock:
            return [line for line in self.lines if line.data.get("event") == event]

    def get(self, path: str) -> tuple[int, bytes]:
        http_ = Http(self.port, timeout=30)
        try:
            status, body, _ = http_.get(path)
        finally:
            http_.close()
        return status, body

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"the daemon exited ({self.proc.returncode}):\n{tail}")


def write_config(
    directory: Path,
    base_url: str,
    agent_ids: list[str],
    *,
    warning: float = 7 * 86400,
    critical: float = 86400,
    interval: str = "10m",
    discover: bool = False,
    level: str = "info",
) -> Path:
    config = {
        "elevenlabs": {
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "timeout": "10s",
            "max_concurrency": CONCURRENCY,
            "max_requests_per_second": RATE,
        },
        "agents": [{"id": agent_id, "name": f"bot-{agent_id}"} for agent_id in agent_ids],
        # Discovery takes every agent the simulator lists, names and all, as at scale in use.
        "discover": discover,
        "poll": {"interval": interval, "jitter": 0, "spread": False},
        "thresholds": {"warning": warning, "critical": critical},
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": level, "format": "json"},
    }
    path = directory / f"config-{len(agent_ids)}-{time.monotonic_ns()}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def compile_daemon() -> None:
    """The daemon's bytecode, as the image has it (compiled at build time): under
    PYTHONDONTWRITEBYTECODE every start would compile ours from source, the compiler's
    peak counting in VmHWM (0.45 MiB at one agent)."""
    compileall.compile_dir(DAEMON_ROOT / "monitor", quiet=1)


def start_daemon(children: Children, config: Path, timeout: float = 60) -> Daemon:
    env = {**os.environ, KEY_ENV: API_KEY, "PYTHONUNBUFFERED": "1"}
    spawned = time.time()
    proc = children.start(
        [DAEMON_PYTHON, "-m", "monitor", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=DAEMON_ROOT,
    )
    daemon = Daemon(proc)
    for target in (daemon.read_stdout, daemon.read_stderr):
        threading.Thread(target=target, daemon=True).start()

    def started() -> Line | None:
        daemon.alive()
        found = daemon.events("monitor_started")
        return found[0] if found else None

    line: Line = wait_until(started, timeout, "monitor_started", step=0.01)
    daemon.port = int(str(line.data["address"]).rsplit(":", 1)[1])
    daemon.started_at = line.seen
    daemon.startup_s = line.seen - spawned
    return daemon


def metric_values(text: str, name: str) -> list[float]:
    values = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            values.append(float(line.rsplit(" ", 1)[1]))
    return values


@dataclass
class Cycle:
    agents: int
    duration_s: float
    floor_s: float
    cpu_s: float
    polls_ok: int
    requests: int
    sim_cpu_s: float
    startup_s: float

    @property
    def ratio(self) -> float:
        return self.duration_s / self.floor_s

    @property
    def polls_per_cpu_s(self) -> float:
        return self.polls_ok / self.cpu_s if self.cpu_s else math.inf


def measure_cycle(daemon: Daemon, sim: Sim, agents: int, sim_before: dict[str, Any]) -> Cycle:
    """Wait for the first (burst) cycle to end; its time from the daemon's own gauge."""
    budget = max(60.0, agents * 0.02)  # far above any plausible cycle

    def ready() -> bool:
        daemon.alive()
        with contextlib.suppress(OSError):
            return daemon.get("/readyz")[0] == 200
        return False

    wait_until(ready, budget, "the first cycle to finish", step=0.1)
    cpu_end = cpu_seconds(daemon.proc.pid)
    sim_after = sim.stats()

    def duration() -> float | None:
        values = metric_values(
            daemon.get("/metrics")[1].decode(),
            "elevenlabs_link_monitor_last_cycle_duration_seconds",
        )
        return values[0] if values else None

    seconds: float = wait_until(duration, 10, "last_cycle_duration_seconds")
    text = daemon.get("/metrics")[1].decode()
    ok = sum(1 for v in metric_values(text, "elevenlabs_agent_link_poll_success") if v == 1.0)
    return Cycle(
        agents=agents,
        duration_s=seconds,
        floor_s=agents * LATENCY / CONCURRENCY,
        cpu_s=cpu_end - daemon.cpu_at_start,
        polls_ok=ok,
        requests=int(sim_after["requests"] - sim_before["requests"]),
        sim_cpu_s=float(sim_after["cpu"] - sim_before["cpu"]),
        startup_s=daemon.startup_s,
    )


def scrape(
    daemon: Daemon, count: int, budget_s: float = 60.0, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Up to `count` scrapes of /metrics (fewer if `budget_s` runs out, at least 10), one after
    another over one kept-alive connection, as Prometheus does."""
    http_ = Http(daemon.port)
    times: list[float] = []
    size = 0
    encoding = ""
    cpu0 = cpu_seconds(daemon.proc.pid)
    deadline = time.monotonic() + budget_s
    try:
        for _ in range(count):
            if len(times) >= 10 and time.monotonic() > deadline:
                break
            started = time.perf_counter()
            status, body, encoding = http_.get("/metrics", headers)
            times.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
            size = len(body)
            if encoding == "gzip":
                size = len(gzip.decompress(body))
    finally:
        http_.close()
    cpu = cpu_seconds(daemon.proc.pid) - cpu0
    times.sort()
    return {
        "scrapes": len(times),
        "median_ms": statistics.median(times) * 1000,
        "p99_ms": times[max(0, math.ceil(0.99 * len(times)) - 1)] * 1000,
        "max_ms": times[-1] * 1000,
        "daemon_cpu_ms_per_scrape": cpu / len(times) * 1000,
        "body_bytes": size,
        "content_encoding": encoding or "identity",
        "content_type": http_.content_type,
    }


def stop_daemon(children: Children, daemon: Daemon) -> int | None:
    return children.stop(daemon.proc)


# --- scenarios ------------------------------------------------------------------------------------


def daemon_scenario(
    children: Children,
    sim: Sim,
    tmp: Path,
    agents: int,
    *,
    scrapes: int,
    budget_s: float,
    prometheus_scrapes: int | None = None,
    discover: bool = False,
) -> dict[str, Any]:
    """One daemon: start-up, the first (burst) cycle, `scrapes` plain scrapes, then
    `prometheus_scrapes` with Prometheus' headers; its peak RSS covers all of them. With
    `discover`, the agents are the simulator's listing (it must list exactly `agents`)."""
    how = "discovered" if discover else "configured"
    progress(f"daemon: {agents} {how} agents, first cycle as a burst")
    ids = [] if discover else [f"agent_{i:06d}" for i in range(agents)]
    before = sim.stats()
    daemon = start_daemon(children, write_config(tmp, sim.url, ids, discover=discover))
    try:
        cycle = measure_cycle(daemon, sim, agents, before)
        hwm_cycle = memory_kib(daemon.proc.pid, "VmHWM")
        progress(
            f"  cycle {cycle.duration_s:.2f}s (floor {cycle.floor_s:.3f}s, "
            f"x{cycle.ratio:.1f}), {cycle.cpu_s:.2f} CPU-s, {cycle.polls_ok} ok"
        )
        plain = scrape(daemon, scrapes, budget_s * 0.75)
        prom_count = max(10, scrapes // 4) if prometheus_scrapes is None else prometheus_scrapes
        prom = scrape(daemon, prom_count, budget_s * 0.25, PROMETHEUS_HEADERS)
        progress(f"  scrape p50 {plain['median_ms']:.1f} ms, p99 {plain['p99_ms']:.1f} ms")
        hwm = memory_kib(daemon.proc.pid, "VmHWM")
        rss = memory_kib(daemon.proc.pid, "VmRSS")
        poll_failed = len(daemon.events("poll_failed"))
    finally:
        code = stop_daemon(children, daemon)
    return {
        "agents": agents,
        "discovered": discover,
        "startup_s": cycle.startup_s,
        "cycle_s": cycle.duration_s,
        "floor_s": cycle.floor_s,
        "cycle_ratio": cycle.ratio,
        "cpu_s": cycle.cpu_s,
        "cpu_ms_per_poll": cycle.cpu_s / max(1, cycle.polls_ok) * 1000,
        "polls_ok": cycle.polls_ok,
        "requests_at_sim": cycle.requests,
        "poll_failed_lines": poll_failed,
        "polls_per_cpu_s": cycle.polls_per_cpu_s,
        "sim_cpu_ms_per_request": cycle.sim_cpu_s / max(1, cycle.requests) * 1000,
        "scrape": plain,
        "scrape_prometheus_headers": prom,
        "vm_hwm_mb": hwm / 1024,
        "vm_hwm_after_cycle_mb": hwm_cycle / 1024,
        "vm_rss_mb": rss / 1024,
        "exit_code": code,
    }


def sdk_scenario(
    children: Children, sim: Sim, agents: int, *, pool: bool, repeat: int = 1
) -> dict[str, Any]:
    """The SDK loop `repeat` times (its CPU per poll varies from run to run with how many
    connections httpx keeps open); the run with the median CPU, and every run's figure."""
    runs = [sdk_run(children, sim, agents, pool=pool) for _ in range(repeat)]
    runs.sort(key=lambda r: r["cpu_s"])
    result = dict(runs[len(runs) // 2])
    result["runs_cpu_ms_per_poll"] = [r["cpu_ms_per_poll"] for r in runs]
    return result


def sdk_run(children: Children, sim: Sim, agents: int, *, pool: bool) -> dict[str, Any]:
    what = "pool of 64" if pool else "defaults"
    progress(f"official SDK loop ({what}): {agents} agents, {CONCURRENCY} in flight")
    before = sim.stats()
    cmd = own_cmd(
        "_sdk", "--base-url", sim.url, "--agents", str(agents), "--concurrency", str(CONCURRENCY)
    )
    if pool:
        cmd.append("--pool")
    proc = children.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=max(120.0, agents * 0.03))
    finally:
        children.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"the SDK loop failed ({proc.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    after = sim.stats()
    result["requests_at_sim"] = int(after["requests"] - before["requests"])
    result["agents"] = agents
    result["polls_per_cpu_s"] = result["polls"] / result["cpu_s"] if result["cpu_s"] else math.inf
    result["cpu_ms_per_poll"] = result["cpu_s"] / max(1, result["polls"]) * 1000
    result["ratio_to_floor"] = result["wall_s"] / (agents * LATENCY / CONCURRENCY)
    result["sim_cpu_ms_per_request"] = (
        (after["cpu"] - before["cpu"]) / max(1, result["requests_at_sim"]) * 1000
    )
    progress(
        f"  {result['wall_s']:.2f}s, {result['cpu_s']:.2f} CPU-s, "
        f"{result['polls_per_cpu_s']:.0f} polls/CPU-s"
    )
    return result


def alert_scenario(children: Children, tmp: Path, margin: float) -> dict[str, Any]:
    """One agent whose link crosses warning, critical and expiry 2 s apart, a few seconds in;
    also the daemon's peak RSS with one agent."""
    progress("alert delay: one link crossing warning, critical, expiry; daemon with 1 agent")
    cross_at = float(math.ceil(time.time() + margin))
    sim = start_sim(children, 0, LATENCY, cross_at=cross_at, warning=ALERT_WARNING)
    try:
        config = write_config(
            tmp,
            sim.url,
            ["agent_crossing"],
            warning=ALERT_WARNING,
            critical=ALERT_CRITICAL,
        )
        daemon = start_daemon(children, config)
        try:
            wait_until(lambda: daemon.get("/readyz")[0] == 200, 30, "the first poll", step=0.05)
            ready_at = time.time()
            text = daemon.get("/metrics")[1].decode()
            expiry = metric_values(text, "elevenlabs_agent_link_expiry_timestamp_seconds")[0]
            crossings = {
                "warning": expiry - ALERT_WARNING,
                "critical": expiry - ALERT_CRITICAL,
                "expired": expiry,
            }

            def alerted() -> list[Line] | None:
                daemon.alive()
                lines = [x for x in daemon.events("link_alert") if x.data["state"] == "expired"]
                return daemon.events("link_alert") if lines else None

            lines: list[Line] = wait_until(
                alerted, expiry - time.time() + 10, "the expired link_alert"
            )
            scrape(daemon, 20, 10)
            hwm = memory_kib(daemon.proc.pid, "VmHWM")
            rss = memory_kib(daemon.proc.pid, "VmRSS")
        finally:
            stop_daemon(children, daemon)
    finally:
        children.stop(sim.proc)
    alerts = []
    for line in lines:
        state = line.data["state"]
        stamp = datetime.datetime.fromisoformat(line.data["timestamp"]).timestamp()
        alerts.append(
            {
                "state": state,
                "previous_state": line.data.get("previous_state"),
                "delay_s": stamp - crossings[state],
                "delay_seen_s": line.seen - crossings[state],
            }
        )
    valid = ready_at < crossings["warning"] and bool(alerts)
    valid = valid and alerts[0]["previous_state"] == "ok"
    worst = max((a["delay_s"] for a in alerts), default=math.nan)
    progress(f"  worst delay {worst * 1000:.1f} ms over {len(alerts)} alerts")
    return {
        "alerts": alerts,
        "worst_delay_s": worst,
        "valid": valid,
        "note": "" if valid else "the first poll came after the crossing: not an on-time test",
        "vm_hwm_mb": hwm / 1024,
        "vm_rss_mb": rss / 1024,
    }


def profile_scenario(
    children: Children, sim: Sim, tmp: Path, agents: int, out: Path
) -> dict[str, Any]:
    """py-spy attached to the daemon for its first (burst) cycle."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    progress(f"profile: py-spy on the daemon, {agents} agents")
    ids = [f"agent_{i:06d}" for i in range(agents)]
    before = sim.stats()
    daemon = start_daemon(children, write_config(tmp, sim.url, ids))
    spy_proc: subprocess.Popen[bytes] | None = None
    try:
        spy_proc = children.start(
            [
                spy,
                "record",
                "--pid",
                str(daemon.proc.pid),
                "--rate",
                "200",
                "--nolineno",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        cycle = measure_cycle(daemon, sim, agents, before)
    finally:
        if spy_proc is not None:
            children.stop(spy_proc, signal.SIGINT)
        stop_daemon(children, daemon)
    if not out.exists():
        err = spy_proc.stderr.read().decode() if spy_proc and spy_proc.stderr else ""
        return {"skipped": f"py-spy wrote no profile: {err[-500:]}"}
    summary = summarise_profile(out)
    summary["cycle_s_under_profiler"] = cycle.duration_s
    summary["file"] = str(out)
    return summary


AREAS = (
    ("httpcore", "httpcore/"),
    ("httpx", "httpx/"),
    ("h11 (HTTP parsing)", "h11/"),
    ("anyio", "anyio/"),
    ("asyncio", "asyncio/"),
    ("pydantic", "pydantic"),
    ("structlog/logging", "structlog/"),
    ("prometheus_client", "prometheus_client/"),
    ("uvicorn/starlette", "uvicorn/"),
    ("uvicorn/starlette", "starlette/"),
    ("apscheduler", "apscheduler/"),
    ("monitor (ours)", "monitor/"),
    ("ssl/socket", "ssl.py"),
    ("ssl/socket", "socket.py"),
    ("json", "json/"),
)


# Call sites worth naming in the summary, whatever their share.
SELECTED = (
    "AsyncClient.stream",
    "AsyncConnectionPool.handle_async_request",
    "AsyncConnectionPool._assign_requests_to_connections",
    "current_async_library",
    "AsyncHTTP11Connection.handle_async_request",
    "AsyncHTTPConnection._connect",
    "parse_link_body",
    "Store.record",
    "OnTime.evaluate",
    "RateLimiter.acquire",
    "Histogram.observe",
    "AgentExposition.render",
    "generate_latest",
    "H11Protocol.data_received",
    "BoundLoggerLazyProxy.warning",
)


def _area(frame: str) -> str:
    for name, marker in AREAS:
        if marker in frame:
            return name
    if "logging/" in frame:
        return "structlog/logging"
    if "importlib" in frame:
        return "importlib (imports at run time)"
    return "other"


def summarise_profile(path: Path) -> dict[str, Any]:
    """Self and inclusive sample shares per function, and self shares per library."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    area_inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # The first element names the process and thread; the rest are frames, root first.
        frames = [f for f in stack.split(";")[1:] if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        areas[_area(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
        for area in {_area(f) for f in frames}:
            area_inclusive[area] += count

    def share(counter: collections.Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": c, "percent": 100.0 * c / total}
            for name, c in counter.most_common(n)
        ]

    selected = [
        {"name": frame, "samples": c, "percent": 100.0 * c / total}
        for frame, c in inclusive.most_common()
        if any(frame.startswith(name + " ") for name in SELECTED)
    ]
    return {
        "samples": total,
        "selected": selected,
        "top_self": share(own, 15),
        "top_inclusive": share(inclusive, 25),
        "areas_self": share(areas, 20),
        "areas_inclusive": share(area_inclusive, 20),
    }


# --- report ---------------------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for run in results["daemon"]:
        n = run["agents"]
        rows.append(
            (
                f"poll cycle, {n} agents (burst)",
                f"{run['cycle_s']:.2f} s = {run['cycle_ratio']:.2f}x floor ({run['floor_s']:.3f} s)",
                f"<= {TARGETS['cycle_ratio']}x floor",
                _mark(run["cycle_ratio"] <= TARGETS["cycle_ratio"]),
            )
        )
    for run in results["daemon"]:
        rows.append(
            (
                f"daemon CPU, {run['agents']} agents",
                f"{run['polls_per_cpu_s']:.0f} polls/CPU-s ({run['cpu_ms_per_poll']:.2f} ms/poll)",
                "",
                "",
            )
        )
    sdk = results.get("sdk") or {}
    big = results["daemon"][-1]
    by_size = {run["agents"]: run for run in results["daemon"]}
    for key, label in (("defaults", "SDK loop (defaults)"), ("pool64", "SDK loop (pool of 64)")):
        run = sdk.get(key)
        if not run:
            continue
        ratio = by_size[run["agents"]]["polls_per_cpu_s"] / run["polls_per_cpu_s"]
        target = f">= {TARGETS['sdk_ratio']}x" if key == "defaults" else "(reference)"
        spread = run.get("runs_cpu_ms_per_poll") or []
        of = (
            f" (median of {len(spread)}: {', '.join(f'{x:.2f}' for x in spread)} ms/poll)"
            if len(spread) > 1
            else ""
        )
        rows.append(
            (
                f"{label}, {run['agents']} agents",
                f"{run['polls_per_cpu_s']:.0f} polls/CPU-s ({run['cpu_ms_per_poll']:.2f} ms/poll),"
                f" {run['wall_s']:.2f} s; daemon/SDK = {ratio:.2f}x{of}",
                target,
                _mark(ratio >= TARGETS["sdk_ratio"]) if key == "defaults" else "",
            )
        )
    if "skipped" in sdk:
        rows.append(("SDK loop", sdk["skipped"], f">= {TARGETS['sdk_ratio']}x", "n/a"))
    for run in results["daemon"]:
        s = run["scrape"]
        p = run["scrape_prometheus_headers"]
        rows.append(
            (
                f"/metrics scrape, {run['agents']} agents",
                f"p50 {s['median_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms ({s['scrapes']}x, "
                f"{s['body_bytes'] / 1e6:.2f} MB); openmetrics+gzip p50 {p['median_ms']:.1f},"
                f" p99 {p['p99_ms']:.1f} ms",
                f"p99 < {TARGETS['scrape_p99_ms']:.0f} ms" if run is big else "",
                _mark(s["p99_ms"] < TARGETS["scrape_p99_ms"]) if run is big else "",
            )
        )
    alert = results.get("alert") or {}
    if "vm_hwm_mb" in alert:
        rows.append(("peak RSS (VmHWM), 1 agent", f"{alert['vm_hwm_mb']:.1f} MB", "", ""))
    for run in results["daemon"]:
        rows.append(
            (
                f"peak RSS (VmHWM), {run['agents']} agents",
                f"{run['vm_hwm_mb']:.1f} MB ({run['vm_hwm_after_cycle_mb']:.1f} MB before the"
                f" scrapes; {run['vm_rss_mb']:.1f} MB RSS at the end)",
                f"< {TARGETS['rss_mb']:.0f} MB" if run is big else "",
                _mark(run["vm_hwm_mb"] < TARGETS["rss_mb"]) if run is big else "",
            )
        )
    if alert.get("alerts"):
        delays = ", ".join(f"{a['state']} {a['delay_s'] * 1000:.0f} ms" for a in alert["alerts"])
        rows.append(
            (
                "threshold crossing -> link_alert",
                delays + ("" if alert["valid"] else f" ({alert['note']})"),
                f"< {TARGETS['alert_delay_s']:.0f} s",
                _mark(alert["worst_delay_s"] < TARGETS["alert_delay_s"] and alert["valid"]),
            )
        )
    for run in results["daemon"]:
        rows.append(
            (
                f"daemon start-up, {run['agents']} agents",
                f"{run['startup_s']:.2f} s (spawn to monitor_started)",
                "",
                "",
            )
        )
    header = ("figure", "value", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    out = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"machine: {m['nproc']} CPU(s), {m['cpu_model']}, Python {m['python']}, "
        f"Linux {m['kernel']}",
        "packages: " + ", ".join(f"{k} {v or '-'}" for k, v in m["packages"].items()),
        f"simulated API: +{LATENCY * 1000:.0f} ms per answer, own process "
        f"({results.get('sim_server', 'uvicorn+h11')}); "
        f"max_concurrency {CONCURRENCY}; floor = agents x latency / concurrency",
        "",
        table(results),
    ]
    for run in results["daemon"]:
        lines.append(
            f"\n{run['agents']} agents: {run['requests_at_sim']} requests reached the simulator, "
            f"{run['polls_ok']} polls ok, {run['poll_failed_lines']} poll_failed lines; "
            f"simulator CPU {run['sim_cpu_ms_per_request']:.2f} ms/request"
        )
    profile = results.get("profile") or {}
    if profile.get("samples"):
        lines.append(
            f"\nprofile (py-spy, {profile['samples']} on-CPU samples during a "
            f"{results['sizes'][-1]}-agent burst cycle of {profile['cycle_s_under_profiler']:.2f} s;"
            f" raw stacks in {profile['file']}):"
        )
        lines.append("  by library (self time):")
        lines += [f"    {a['percent']:5.1f}%  {a['name']}" for a in profile["areas_self"]]
        lines.append("  top functions (self time):")
        lines += [f"    {a['percent']:5.1f}%  {a['name']}" for a in profile["top_self"][:10]]
        lines.append("  selected call sites (inclusive: the function and all it calls):")
        lines += [f"    {a['percent']:5.1f}%  {a['name']}" for a in profile["selected"]]
    elif profile.get("skipped"):
        lines.append(f"\nprofile: skipped: {profile['skipped']}")
    lines.append(f"\ntotal benchmark time: {results['elapsed_s']:.0f} s")
    return "\n".join(lines)


# --- the metrics targets, over several runs ---------------------------------------------------------


def metrics_bench(args: argparse.Namespace) -> dict[str, Any]:
    """`args.runs` rounds of: one configured agent, 10,000 discovered agents (or 1,000 with
    --quick), then as many configured agents, each a fresh daemon with its start-up, burst
    cycle and scrapes."""
    big = 1000 if args.quick else 10_000
    results: dict[str, Any] = {
        "mode": "metrics-quick" if args.quick else "metrics",
        "agents": big,
        "targets": TARGETS,
        "machine": machine(),
        "runs": [],
    }
    started = time.monotonic()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp_name:
            tmp = Path(tmp_name)
            progress(f"simulated API: {big} agents, +{LATENCY * 1000:.0f} ms")
            sim = start_sim(children, big, LATENCY)
            for index in range(args.runs):
                progress(f"run {index + 1} of {args.runs}")
                one = daemon_scenario(
                    children, sim, tmp, 1, scrapes=50, budget_s=10.0, prometheus_scrapes=50
                )
                many = daemon_scenario(
                    children,
                    sim,
                    tmp,
                    big,
                    scrapes=50,
                    budget_s=60.0,
                    prometheus_scrapes=50,
                    discover=True,
                )
                # The first cycle of a discovering daemon starts before the listing ends;
                # a configured one's is a clean burst for cycle time and CPU per poll.
                cycle = daemon_scenario(
                    children, sim, tmp, big, scrapes=10, budget_s=10.0, prometheus_scrapes=10
                )
                results["runs"].append({"one": one, "many": many, "cycle": cycle})
    finally:
        children.close()
    results["elapsed_s"] = time.monotonic() - started
    return results


def _spread(values: list[float], unit: str, digits: int = 1) -> str:
    runs = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{min(values):.{digits}f} to {max(values):.{digits}f} {unit} (runs: {runs})"


def metrics_report(results: dict[str, Any]) -> str:
    """Each target with its range over the runs; met only if the worst run meets it."""
    runs = results["runs"]
    n = results["agents"]
    m = results["machine"]
    many = [r["many"] for r in runs]
    one = [r["one"] for r in runs]
    cycles = [r.get("cycle", r["many"]) for r in runs]
    plain_p99 = [r["scrape"]["p99_ms"] for r in many]
    prom_p99 = [r["scrape_prometheus_headers"]["p99_ms"] for r in many]
    hwm = [r["vm_hwm_mb"] for r in many]
    hwm_one = [r["vm_hwm_mb"] for r in one]
    rows = [
        (
            f"/metrics p99, {n} agents, plain",
            _spread(plain_p99, "ms"),
            f"< {TARGETS['scrape_p99_ms']:.0f} ms",
            _mark(max(plain_p99) < TARGETS["scrape_p99_ms"]),
        ),
        (
            f"/metrics p99, {n} agents, as Prometheus asks",
            _spread(prom_p99, "ms"),
            f"< {TARGETS['scrape_prometheus_p99_ms']:.0f} ms",
            _mark(max(prom_p99) < TARGETS["scrape_prometheus_p99_ms"]),
        ),
        (
            f"/metrics p50, {n} agents, plain / as Prometheus asks",
            _spread([r["scrape"]["median_ms"] for r in many], "ms")
            + " / "
            + _spread([r["scrape_prometheus_headers"]["median_ms"] for r in many], "ms"),
            "",
            "",
        ),
        (
            f"peak RSS (VmHWM), {n} agents",
            _spread(hwm, "MiB"),
            f"< {TARGETS['rss_mb']:.0f} MiB",
            _mark(max(hwm) < TARGETS["rss_mb"]),
        ),
        (
            "peak RSS (VmHWM), 1 agent",
            _spread(hwm_one, "MiB"),
            f"< {TARGETS['rss_one_agent_mb']:.0f} MiB",
            _mark(max(hwm_one) < TARGETS["rss_one_agent_mb"]),
        ),
        (
            f"daemon CPU per poll, {n} configured agents",
            _spread([r["cpu_ms_per_poll"] for r in cycles], "ms", 2),
            "no regression",
            "",
        ),
        (
            f"poll cycle, {n} configured agents (burst), x floor",
            _spread([r["cycle_ratio"] for r in cycles], "x", 2),
            "no regression",
            "",
        ),
        (
            f"daemon start-up, {n} discovered agents",
            _spread([r["startup_s"] for r in many], "s", 2),
            "",
            "",
        ),
    ]
    header = ("figure", "value (range over runs)", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    out = [
        f"machine: {m['nproc']} CPU(s), {m['cpu_model']}, Python {m['python']}; "
        f"{len(runs)} runs; {n} agents discovered unless said; peak RSS over start-up, "
        "a burst cycle and 100 scrapes",
        "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    last = many[-1]
    out.append(
        f"\n{n} agents: body {last['scrape']['body_bytes'] / MIB:.1f} MiB plain "
        f"({last['scrape']['content_type']}), "
        f"{last['scrape_prometheus_headers']['body_bytes'] / MIB:.1f} MiB as Prometheus asks "
        f"({last['scrape_prometheus_headers']['content_type']}, "
        f"{last['scrape_prometheus_headers']['content_encoding']})"
    )
    out.append(f"total benchmark time: {results['elapsed_s']:.0f} s")
    return "\n".join(out)


# --- steady cycles at the shortest interval ----------------------------------------------------------

SHORTEST_INTERVAL = "1s"  # the config's minimum (poll.interval)


def cycles_run(
    children: Children, sim: Sim, tmp: Path, agents: int, seconds: float
) -> dict[str, Any]:
    """One daemon polling `agents` every second: after two warm-up cycles, its CPU over
    `seconds` of steady cycles per request the simulator answered, and each cycle's time
    (the daemon's `cycle_finished` lines, logged at debug and only once a cycle)."""
    ids = [f"agent_{i:06d}" for i in range(agents)]
    config = write_config(tmp, sim.url, ids, interval=SHORTEST_INTERVAL, level="debug")
    daemon = start_daemon(children, config)
    try:
        wait_until(lambda: len(daemon.events("cycle_finished")) >= 3, 30, "two warm-up cycles")
        seen = len(daemon.events("cycle_finished"))
        cpu0, requests0 = cpu_seconds(daemon.proc.pid), sim.stats()["requests"]
        time.sleep(seconds)
        cpu1, requests1 = cpu_seconds(daemon.proc.pid), sim.stats()["requests"]
        daemon.alive()
        cycles = [float(x.data["seconds"]) for x in daemon.events("cycle_finished")[seen:]]
        overruns = len(daemon.events("cycle_overrun"))
        hwm = memory_kib(daemon.proc.pid, "VmHWM")
    finally:
        stop_daemon(children, daemon)
    requests = int(requests1 - requests0)
    return {
        "agents": agents,
        "seconds": seconds,
        "requests": requests,
        "cpu_s": cpu1 - cpu0,
        "cpu_ms_per_poll": (cpu1 - cpu0) / max(1, requests) * 1000,
        "cycles_s": cycles,
        "cycle_median_s": statistics.median(cycles) if cycles else math.nan,
        "floor_s": agents * LATENCY / CONCURRENCY,
        "overruns": overruns,
        "vm_hwm_mb": hwm / 1024,
    }


def cycles_bench(args: argparse.Namespace) -> dict[str, Any]:
    """`args.runs` daemons, one after another, each `args.seconds` of 1 s cycles."""
    agents = 200 if args.quick else 1000
    results: dict[str, Any] = {
        "mode": "cycles",
        "daemon_root": str(DAEMON_ROOT),
        "interval": SHORTEST_INTERVAL,
        "machine": machine(),
        "runs": [],
    }
    started = time.monotonic()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp_name:
            sim = start_sim(children, agents, LATENCY)
            for index in range(args.runs):
                progress(f"cycles: run {index + 1} of {args.runs}, {agents} agents every 1 s")
                run = cycles_run(children, sim, Path(tmp_name), agents, args.seconds)
                progress(
                    f"  {run['cpu_ms_per_poll']:.3f} ms CPU/poll, cycle median "
                    f"{run['cycle_median_s']:.3f} s, {run['overruns']} overruns"
                )
                results["runs"].append(run)
    finally:
        children.close()
    results["elapsed_s"] = time.monotonic() - started
    return results


def cycles_report(results: dict[str, Any]) -> str:
    """CPU per poll and cycle time as the median over the runs, with their spread."""
    runs = results["runs"]
    m = results["machine"]
    cpu = [r["cpu_ms_per_poll"] for r in runs]
    cycle = [r["cycle_median_s"] for r in runs]
    floor = runs[0]["floor_s"]
    every = [c for r in runs for c in r["cycles_s"]]
    every.sort()
    p90 = every[max(0, math.ceil(0.9 * len(every)) - 1)] if every else math.nan
    return "\n".join(
        [
            f"machine: {m['nproc']} CPU(s), {m['cpu_model']}, Python {m['python']}; "
            f"daemon from {results['daemon_root']}",
            f"{runs[0]['agents']} agents polled every {results['interval']} (spread off), "
            f"{len(runs)} daemons x {runs[0]['seconds']:g} s of steady cycles, "
            f"+{LATENCY * 1000:.0f} ms per answer, {CONCURRENCY} in flight",
            f"CPU per poll: median {statistics.median(cpu):.3f} ms "
            f"(spread {min(cpu):.3f} to {max(cpu):.3f}; runs: "
            + ", ".join(f"{x:.3f}" for x in cpu)
            + ")",
            f"cycle time: median {statistics.median(cycle):.3f} s = "
            f"{statistics.median(cycle) / floor:.2f}x the floor ({floor:.3f} s); "
            f"per run {min(cycle):.3f} to {max(cycle):.3f} s; p90 of all {len(every)} cycles "
            f"{p90:.3f} s; overruns {sum(r['overruns'] for r in runs)}",
            f"peak RSS: {min(r['vm_hwm_mb'] for r in runs):.1f} to "
            f"{max(r['vm_hwm_mb'] for r in runs):.1f} MiB",
            f"total benchmark time: {results['elapsed_s']:.0f} s",
        ]
    )


# --- main -----------------------------------------------------------------------------------------


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise TimeoutError("the benchmark ran past its overall time limit")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    sizes = [200, 1000] if quick else [1000, 10_000]
    scrapes = 40 if quick else 200
    scrape_budget = 8.0 if quick else 150.0  # seconds for the scrapes at the largest size
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "sizes": sizes,
        "latency_s": LATENCY,
        "concurrency": CONCURRENCY,
        "targets": TARGETS,
        "machine": machine(),
    }
    started = time.monotonic()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp_name:
            tmp = Path(tmp_name)
            results["alert"] = alert_scenario(children, tmp, margin=3.0)
            progress(f"simulated API: {sizes[-1]} agents, +{LATENCY * 1000:.0f} ms")
            sim = start_sim(children, sizes[-1], LATENCY)
            results["sim_server"] = "uvicorn+httptools+uvloop" if sim.fast else "uvicorn+h11"
            results["daemon"] = [
                daemon_scenario(children, sim, tmp, n, scrapes=scrapes, budget_s=scrape_budget)
                if n == sizes[-1]
                else daemon_scenario(children, sim, tmp, n, scrapes=50, budget_s=10.0)
                for n in sizes
            ]
            sdk: dict[str, Any] = {}
            if importlib.util.find_spec("elevenlabs") is None:
                sdk["skipped"] = "the elevenlabs SDK is not installed (pip install elevenlabs)"
            else:
                sdk["version"] = importlib.metadata.version("elevenlabs")
                sdk["defaults"] = sdk_scenario(children, sim, sizes[-1], pool=False, repeat=3)
                if not args.no_pool_variant:
                    # Costly per poll (the same pool bookkeeping as the daemon's): smaller size.
                    sdk["pool64"] = sdk_scenario(children, sim, sizes[0], pool=True)
            results["sdk"] = sdk
            if not args.no_profile:
                results["profile"] = profile_scenario(
                    children, sim, tmp, sizes[-1], Path(args.profile_out)
                )
    finally:
        children.close()
    results["elapsed_s"] = time.monotonic() - started
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    roles = parser.add_subparsers(dest="role")
    sim = roles.add_parser("_sim", help=argparse.SUPPRESS)
    sim.add_argument("--agents", type=int, required=True)
    sim.add_argument("--latency", type=float, default=LATENCY)
    sim.add_argument("--cross-at", type=float)
    sim.add_argument("--warning", type=float, default=ALERT_WARNING)
    sim.add_argument("--plain", action="store_true", help="h11 and asyncio even if faster exist")
    sdk = roles.add_parser("_sdk", help=argparse.SUPPRESS)
    sdk.add_argument("--base-url", required=True)
    sdk.add_argument("--agents", type=int, required=True)
    sdk.add_argument("--concurrency", type=int, default=CONCURRENCY)
    sdk.add_argument("--pool", action="store_true")
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 agents (< 1 min)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--save", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument(
        "--from-json", metavar="PATH", help="print the table of a saved run; measure nothing"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="only the /metrics and memory targets: 1 and 10,000 agents, --runs times",
    )
    parser.add_argument(
        "--cycles",
        action="store_true",
        help="1,000 agents polled every 1 s (the shortest interval): CPU per poll and cycle "
        "time, the median of --runs daemons with the spread",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="steady cycles measured per --cycles run"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="rounds of --metrics or --cycles (default 3)"
    )
    parser.add_argument(
        "--daemon-root",
        metavar="DIR",
        help="run the daemon from this checkout (another commit's code) against this "
        "script's simulated API",
    )
    parser.add_argument(
        "--daemon-python",
        metavar="PATH",
        help="run the daemon on this interpreter (default: this script's); `make bench` "
        "passes a virtualenv holding only the runtime dependencies",
    )
    parser.add_argument(
        "--no-pool-variant", action="store_true", help="skip the SDK run with a 64-wide pool"
    )
    parser.add_argument(
        "--profile-out",
        default=str(Path(tempfile.gettempdir()) / "monitor-bench-profile.txt"),
        help="where py-spy's raw (collapsed) stacks go; speedscope opens them",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "_sim":
        return serve_sim(args)
    if args.role == "_sdk":
        return run_sdk(args)

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(_report_of(saved))
        return 0
    if args.daemon_root:
        global DAEMON_ROOT  # noqa: PLW0603 - set once, before any daemon starts
        DAEMON_ROOT = Path(args.daemon_root).resolve()
    if args.daemon_python:
        global DAEMON_PYTHON  # noqa: PLW0603 - set once, before any daemon starts
        DAEMON_PYTHON = os.path.abspath(args.daemon_python)  # not resolved: a venv is a link
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGALRM, _on_alarm)
    if args.cycles:
        signal.alarm(int((args.seconds + 30) * args.runs) + 30)
    elif args.metrics:
        signal.alarm(120 * args.runs)
    else:
        signal.alarm(90 if args.quick else 600)
    compile_daemon()
    try:
        results = _measure(args)
    finally:
        signal.alarm(0)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(_report_of(results))
    return 0


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.cycles:
        return cycles_bench(args)
    return metrics_bench(args) if args.metrics else bench(args)


def _report_of(results: dict[str, Any]) -> str:
    if results.get("mode") == "cycles":
        return cycles_report(results)
    return metrics_report(results) if "runs" in results else report(results)


if __name__ == "__main__":
    sys.exit(main())
