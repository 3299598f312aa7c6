"""Reload races (issue 21, never blind): a file written while a reload reads the previous
version is never taken as seen; the next look at the files loads it. And a reload that cannot
be applied whole (a changed `server:`) says so.

In-process: the Runtime on a tmp config file; the parse (`load_config`) or a key read is
intercepted to write the next version at the worst moment, no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from prometheus_client.parser import text_string_to_metric_families
from structlog.typing import EventDict

import monitor.runtime.reload
from monitor.config.keys import read_api_key
from monitor.config.loading import load_config
from monitor.config.schema import Config, WorkspaceConfig
from monitor.runtime.wiring import Runtime
from tests.conftest import config_data, kubelet_secret
from tests.fakeapi import FakeApi, FakeClient, expires


@pytest.fixture
def logged() -> Iterator[list[EventDict]]:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as lines:
        yield lines


@pytest.fixture
def api() -> FakeApi:
    api = FakeApi()
    for agent in ("one", "two", "three"):
        api.set(agent, expires(None))
    return api


def write_config(
    path: Path, agents: list[str], server: dict[str, Any] | None = None, **elevenlabs: Any
) -> Path:
    """A config (the server on 127.0.0.1, port 0, but for `server`)."""
    data = config_data("http://127.0.0.1:9", agents, elevenlabs=elevenlabs, server=server or {})
    path.write_text(yaml.safe_dump(data))
    return path


def runtime_on(
    path: Path, api: FakeApi, after_key_read: Callable[[], None] = lambda: None
) -> Runtime:
    def read_key(workspace: WorkspaceConfig) -> str:
        key = read_api_key(workspace, base=path.parent)
        after_key_read()
        return key

    return Runtime(load_config(path), read_key, config_path=path, make_client=api.client)


def agents(runtime: Runtime) -> list[str]:
    return [a.id for a in runtime.config.agents]


def client_key(runtime: Runtime) -> str:
    client = runtime.clients.get("default")
    assert isinstance(client, FakeClient)
    return client.key


def reloads(logged: list[EventDict]) -> list[tuple[str, Any]]:
    return [(x["event"], x.get("cause")) for x in logged if x["event"].startswith("config_rel")]


def test_a_config_written_while_the_previous_one_is_parsed_is_loaded_next(
    tmp_path: Path, api: FakeApi, logged: list[EventDict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_env_key")
    path = write_config(tmp_path / "config.yaml", ["one"])
    runtime = runtime_on(path, api)
    assert runtime.reloader is not None
    reloader = runtime.reloader
    parses: list[list[str]] = []

    def load_then_write(file: Path) -> Config:
        config = load_config(file)
        parses.append([a.id for a in config.agents])
        if len(parses) == 1:
            write_config(path, ["one", "two", "three"])  # saved while version 2 was parsed
        return config

    monkeypatch.setattr(monitor.runtime.reload, "load_config", load_then_write)

    async def main() -> None:
        runtime.start()
        write_config(path, ["one", "two"])
        assert await reloader.check_files()
        assert agents(runtime) == ["one", "two"]
        # Before: version 3 was fingerprinted as seen after the apply, and never loaded.
        assert await reloader.check_files(), "the config written during the parse was lost"
        assert agents(runtime) == ["one", "two", "three"]
        assert not await reloader.check_files()
        await runtime.stop()

    asyncio.run(main())
    assert parses == [["one", "two"], ["one", "two", "three"]]
    assert reloads(logged) == [("config_reloaded", "file changed")] * 2
    assert runtime.health.config_reload_ok


def test_a_key_rotated_just_after_a_reload_read_it_is_loaded_next(
    tmp_path: Path, api: FakeApi, logged: list[EventDict]
) -> None:
    link = kubelet_secret(tmp_path / "secret", "sk_first_key", 1)
    path = write_config(tmp_path / "config.yaml", ["one"], api_key_file=str(link))
    rotate: list[str] = []

    def after_key_read() -> None:
        if rotate:  # the kubelet swaps the Secret between the read and the end of the reload
            kubelet_secret(tmp_path / "secret", rotate.pop(), 3)

    runtime = runtime_on(path, api, after_key_read)
    assert runtime.reloader is not None
    reloader = runtime.reloader

    async def main() -> None:
        runtime.start()
        assert client_key(runtime) == "sk_first_key"
        kubelet_secret(tmp_path / "secret", "sk_second_key", 2)
        rotate.append("sk_third_key")
        assert await reloader.check_files()
        assert client_key(runtime) == "sk_second_key"
        assert await reloader.check_files(), "the key rotated during the reload was lost"
        assert client_key(runtime) == "sk_third_key"
        assert not await reloader.check_files()
        await runtime.stop()

    asyncio.run(main())
    assert reloads(logged) == [("config_reloaded", "key file changed")] * 2


def test_a_key_file_fixed_after_a_reload_failed_on_it_is_loaded(
    tmp_path: Path, api: FakeApi, logged: list[EventDict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new config names a key file that is not there yet: the reload fails; the file
    written afterwards must be noticed (before, only the running config's files were
    watched, so it waited for the next SIGHUP or edit of the config)."""
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_env_key")
    path = write_config(tmp_path / "config.yaml", ["one"])
    runtime = runtime_on(path, api)
    assert runtime.reloader is not None
    reloader = runtime.reloader
    key_file = tmp_path / "key"

    async def main() -> None:
        runtime.start()
        write_config(path, ["one", "two"], api_key_file=str(key_file))
        assert await reloader.check_files()
        assert not runtime.health.config_reload_ok
        assert agents(runtime) == ["one"]
        assert not await reloader.check_files()  # a bad config is not retried every tick
        key_file.write_text("sk_file_key\n")
        assert await reloader.check_files(), "the key file the new config needs was ignored"
        assert agents(runtime) == ["one", "two"]
        assert client_key(runtime) == "sk_file_key"
        assert runtime.health.config_reload_ok
        await runtime.stop()

    asyncio.run(main())
    assert reloads(logged) == [
        ("config_reload_failed", "file changed"),
        ("config_reloaded", "key file changed"),
    ]


# --- a reload that cannot be applied whole says so ---------------------------------------------


def reload_gauge(runtime: Runtime) -> float | None:
    text = runtime.metrics.render().body().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "elevenlabs_link_monitor_config_last_reload_successful":
                return float(sample.value)
    return None


def test_a_reload_that_changes_the_server_is_partial_until_the_server_is_put_back(
    tmp_path: Path, api: FakeApi, logged: list[EventDict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server (host, port, TLS, the status page) is bound once, at start: a reload that
    changes it applies everything else and reports itself not successful."""
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_env_key")
    path = tmp_path / "config.yaml"
    write_config(path, ["one"])
    runtime = runtime_on(path, api)
    assert runtime.reloader is not None
    reloader = runtime.reloader

    async def main() -> None:
        runtime.start()
        assert reload_gauge(runtime) == 1
        write_config(path, ["one", "two"], server={"port": 9999})
        assert await reloader.check_files()
        assert agents(runtime) == ["one", "two"]  # the rest of the config is applied
        # Before: reported successful (gauge 1, `config_reloaded`) while the old port served.
        assert reload_gauge(runtime) == 0, "a server change was reported as applied"
        assert not runtime.health.config_reload_ok
        # Another reload that still differs from the running server: still partial.
        write_config(path, ["one", "two"], server={"port": 9999, "status_page": False})
        assert not await runtime.reload("SIGHUP")
        assert reload_gauge(runtime) == 0
        # The server put back as it runs: the next reload applies whole.
        write_config(path, ["one", "two", "three"])  # as at start
        assert await reloader.check_files()
        assert agents(runtime) == ["one", "two", "three"]
        assert reload_gauge(runtime) == 1
        await runtime.stop()

    asyncio.run(main())
    outcomes = [
        (x["event"], x["log_level"], x.get("cause"), x.get("keys"))
        for x in logged
        if x["event"].startswith("config_")
    ]
    assert outcomes == [
        ("config_reload_partial", "warning", "file changed", ["server"]),
        ("config_reload_partial", "warning", "SIGHUP", ["server"]),
        ("config_reloaded", "info", "file changed", None),
    ]
    partial = [x for x in logged if x["event"] == "config_reload_partial"]
    assert "server.port" in partial[0]["detail"]
    assert "server.status_page" in partial[1]["detail"]
    assert partial[0]["agents"] == 2
