from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import Daemon
from tests.standin import StandIn

CANARY_KEY = "sk_canary_9f8e7d6c5b4a39281706"


def canary_token(name: str) -> str:
    """A conversation token that must never leave the daemon."""
    return f"tok_canary_{name}_b7c1e0"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    api = StandIn(CANARY_KEY)
    yield api
    api.close()


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, standin: StandIn) -> ConfigWriter:
    """Write a config for the stand-in; keyword arguments override top-level sections."""

    def write(agents: list[str], path: Path | None = None, **sections: Any) -> Path:
        config: dict[str, Any] = {
            "elevenlabs": {
                "base_url": standin.url,
                "timeout": "2s",
                "max_concurrency": 8,
                "max_requests_per_second": 50,
                "max_retries": 0,
            },
            "agents": [{"id": a, "name": f"{a}-name"} for a in agents],
            "poll": {"interval": "1h", "jitter": 0},
            "server": {"host": "127.0.0.1", "port": 0},
        }
        for section, value in sections.items():
            if isinstance(value, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **value}
            else:
                config[section] = value
        target = path or tmp_path / "config.yaml"
        target.write_text(yaml.safe_dump(config))
        return target

    return write


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def start(config: Path, *args: str, env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(config, {"ELEVENLABS_API_KEY": CANARY_KEY, **(env or {})}, *args)
        daemons.append(daemon)
        return daemon.started()

    yield start
    for daemon in daemons:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
