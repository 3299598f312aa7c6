"""The real daemon as a child process: its JSON log lines, its HTTP endpoints, its exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Line = dict[str, Any]
DEFAULT_WAIT = 20.0


def wait_until(condition: Callable[[], Any], timeout: float = DEFAULT_WAIT, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def monitor_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", *args]


def run_monitor(
    *args: str, key: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """One command of the real CLI, to its end. The API key only when given: never one
    inherited from the caller, nor its MONITOR_CONFIG or MONITOR_SHARD."""
    inherited = {"ELEVENLABS_API_KEY", "MONITOR_CONFIG", "MONITOR_SHARD"}
    environ = {k: v for k, v in os.environ.items() if k not in inherited}
    if key is not None:
        environ["ELEVENLABS_API_KEY"] = key
    return subprocess.run(
        monitor_cmd(*args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**environ, **env},
        check=False,
    )


class Daemon:
    def __init__(self, config: Path, env: dict[str, str], *args: str) -> None:
        self.config = config
        self.proc = subprocess.Popen(
            monitor_cmd("run", "--config", str(config), *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        self.lines: list[Line] = []
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.url = ""

    def _read(self, stream: Any, sink: bytearray) -> None:
        for raw in stream:
            with self._lock:
                sink.extend(raw)
                if sink is self.stdout:
                    self.lines.append(json.loads(raw))  # every stdout line must be JSON

    def started(self) -> Daemon:
        line = self.wait_for("monitor_started")
        self.url = line["address"].replace("0.0.0.0", "127.0.0.1")
        return self

    def events(self, event: str, **fields: Any) -> list[Line]:
        with self._lock:
            return [
                line
                for line in self.lines
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
            ]

    def wait_for(self, event: str, timeout: float = DEFAULT_WAIT, **fields: Any) -> Line:
        def found() -> Line | None:
            if self.proc.poll() is not None and not self.events(event, **fields):
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) before {event} {fields}:\n"
                    + self.stderr.decode(errors="replace")
                )
            matches = self.events(event, **fields)
            return matches[-1] if matches else None

        line: Line = wait_until(found, timeout, f"{event} {fields}")
        return line

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics_text(self) -> str:
        code, text = self.get("/metrics")
        assert code == 200
        return text

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of one metric, keyed by its sorted labels."""
        found = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def value(self, name: str, **labels: str) -> float | None:
        for key, value in self.samples(name).items():
            if all((k, v) in key for k, v in labels.items()):
                return value
        return None

    def state_of(self, agent_id: str) -> str | None:
        for key, value in self.samples("elevenlabs_agent_link_state").items():
            labels = dict(key)
            if labels["agent_id"] == agent_id and value == 1:
                return labels["state"]
        return None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for thread in self._threads:
            thread.join(5)
        return code

    def output(self) -> bytes:
        return bytes(self.stdout) + bytes(self.stderr)
