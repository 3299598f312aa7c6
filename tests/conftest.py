from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import Daemon
from tests.standin import StandIn

# The layers, one directory each (docs/development.md): unit (pure and in-process), integration
# (the real daemon process against the loopback stand-in), system (real outside tools).
LAYERS = ("unit", "integration", "system")
TESTS = Path(__file__).resolve().parent


def layer_of(item: pytest.Item) -> str:
    """The layer of a test: its directory; a file not yet moved into one (tests/test_*.py) is
    `integration` when marked so, else `unit`."""
    path = item.path.resolve()
    if path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in LAYERS:
        return path.relative_to(TESTS).parts[0]
    return "integration" if item.get_closest_marker("integration") else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its layer, so `-m unit` (make test-fast) selects the unit tests."""
    for item in items:
        layer = layer_of(item)
        if layer == "unit" and "start_daemon" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(
                f"{item.nodeid} starts the daemon: its place is tests/integration/"
            )
        item.add_marker(layer)


CANARY_KEY = "sk_canary_9f8e7d6c5b4a39281706"


def canary_token(name: str) -> str:
    """A conversation token that must never leave the daemon."""
    return f"tok_canary_{name}_b7c1e0"


SECRETS = [CANARY_KEY.encode(), b"tok_canary_"]
KEY_IN_AGENT_PROBLEM = (
    "the agent's id or name contains an API key, and ids and names are shown on every page: refused"
)


def assert_clean(where: str, data: bytes | str) -> None:
    """Neither the canary key nor any canary token is in `data`."""
    if isinstance(data, str):
        data = data.encode()
    for secret in SECRETS:
        assert secret not in data, f"a secret ({secret[:8]!r}...) leaked into {where}"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    api = StandIn(CANARY_KEY)
    yield api
    api.close()


@pytest.fixture(scope="module")
def module_standin() -> Iterator[StandIn]:
    """One stand-in for a module's shared daemon (see running_daemon)."""
    api = StandIn(CANARY_KEY)
    yield api
    api.close()


ConfigWriter = Callable[..., Path]


def config_data(base_url: str, agents: list[str], **sections: Any) -> dict[str, Any]:
    """A small config as YAML would give it; keyword arguments override top-level sections
    (a dict is merged into the section, anything else replaces it)."""
    config: dict[str, Any] = {
        "elevenlabs": {
            "base_url": base_url,
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
    return config


def kubelet_secret(directory: Path, key: str, version: int) -> Path:
    """A Secret as the kubelet mounts it: `key -> ..data/key`, `..data -> ..<version>`, and
    `..data` replaced atomically on each update."""
    directory.mkdir(exist_ok=True)
    payload = directory / f"..2026_12_01_{version:02d}"
    payload.mkdir()
    (payload / "key").write_text(key + "\n")
    staged = directory / "..data_tmp"
    staged.symlink_to(payload.name)
    os.replace(staged, directory / "..data")
    link = directory / "key"
    if not link.is_symlink():
        link.symlink_to("..data/key")
    return link


def write_config_file(path: Path, base_url: str, agents: list[str], **sections: Any) -> Path:
    """`config_data` written as YAML to `path`."""
    path.write_text(yaml.safe_dump(config_data(base_url, agents, **sections)))
    return path


@pytest.fixture
def write_config(tmp_path: Path, standin: StandIn) -> ConfigWriter:
    """Write a config for the stand-in; keyword arguments override top-level sections."""

    def write(agents: list[str], path: Path | None = None, **sections: Any) -> Path:
        return write_config_file(path or tmp_path / "config.yaml", standin.url, agents, **sections)

    return write


@contextmanager
def running_daemon(config: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """The real daemon on `config`, started (its address known); killed at the end if it is
    still running. For a module-scoped fixture: one daemon that several tests only read."""
    daemon = Daemon(config, {"ELEVENLABS_API_KEY": CANARY_KEY, **(env or {})}, *args)
    try:
        yield daemon.started()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    with ExitStack() as daemons:

        def start(config: Path, *args: str, env: dict[str, str] | None = None) -> Daemon:
            return daemons.enter_context(running_daemon(config, *args, env=env))

        yield start
