"""Reload and the file watch, in-process: key files swapped the kubelet's way, bad files
kept out, the config parsed off the event loop, and a bounded log of problems."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from structlog.typing import EventDict

from monitor.config.keys import read_api_key
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.config.watcher import FileWatcher
from monitor.runtime.wiring import Runtime
from tests.conftest import kubelet_secret
from tests.daemon import wait_until
from tests.fakeapi import FakeApi, FakeClient, expires


@pytest.fixture
def logged() -> Iterator[list[EventDict]]:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as lines:
        yield lines


def write_config(path: Path, agents: list[str], **elevenlabs: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "elevenlabs": {"base_url": "http://127.0.0.1:9", **elevenlabs},
                "agents": [{"id": a} for a in agents],
                "poll": {"interval": "1h", "jitter": 0},
                "server": {"host": "127.0.0.1", "port": 0},
            }
        )
    )
    return path


def runtime_for(path: Path, api: FakeApi) -> Runtime:

    def read_key(workspace: Any) -> str:
        return read_api_key(workspace, base=path.parent)

    return Runtime(load_config(path), read_key, config_path=path, make_client=api.client)


def client_key(runtime: Runtime) -> str:
    client = runtime.clients.get("default")
    assert isinstance(client, FakeClient)
    return client.key


def test_the_watcher_sees_a_kubelet_swap_of_the_same_size_and_time(tmp_path: Path) -> None:
    link = kubelet_secret(tmp_path / "secret", "sk_one", 1)
    watcher = FileWatcher()
    watcher.remember([link])
    assert watcher.changed([link]) == []
    kubelet_secret(tmp_path / "secret", "sk_two", 2)  # same size; the link's own stat is unchanged
    assert watcher.changed([link]) == [link]
    assert watcher.changed([link]) == []


def test_a_swapped_key_is_picked_up_and_a_bad_one_kept_out(
    tmp_path: Path, logged: list[EventDict]
) -> None:
    link = kubelet_secret(tmp_path / "secret", "sk_first_key", 1)
    path = write_config(tmp_path / "config.yaml", ["bot"], api_key_file=str(link))
    api = FakeApi()
    api.set("bot", expires(None))
    runtime = runtime_for(path, api)
    assert runtime.reloader is not None
    reloader = runtime.reloader

    async def main() -> None:
        runtime.start()
        assert client_key(runtime) == "sk_first_key"
        assert not await reloader.check_files()
        kubelet_secret(tmp_path / "secret", "sk_second_key", 2)
        assert await reloader.check_files()
        assert client_key(runtime) == "sk_second_key"
        assert runtime.health.config_reload_ok
        kubelet_secret(tmp_path / "secret", "", 3)
        assert await reloader.check_files()
        assert client_key(runtime) == "sk_second_key"
        assert not runtime.health.config_reload_ok
        assert not await reloader.check_files()  # a bad file is not retried every tick
        await runtime.stop()

    asyncio.run(main())
    reloads = [(x["event"], x["cause"]) for x in logged if x["event"].startswith("config_rel")]
    assert reloads == [
        ("config_reloaded", "key file changed"),
        ("config_reload_failed", "key file changed"),
    ]


def test_reload_parses_off_the_event_loop_and_logs_a_bounded_list(
    tmp_path: Path, logged: list[EventDict], monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.runtime.reload

    path = write_config(tmp_path / "config.yaml", ["bot"])
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_env_key")
    runtime = runtime_for(path, FakeApi())
    threads: list[threading.Thread] = []
    real_load = load_config

    def load(file: Path) -> Config:
        threads.append(threading.current_thread())
        return real_load(file)

    monkeypatch.setattr(monitor.runtime.reload, "load_config", load)

    async def main() -> None:
        runtime.start()
        assert await runtime.reload("SIGHUP")
        write_config(path, [f"bad/{i}" for i in range(50)])
        assert not await runtime.reload("SIGHUP")
        await runtime.stop()

    asyncio.run(main())
    assert threads
    assert all(t is not threading.main_thread() for t in threads)
    failed = next(x for x in logged if x["event"] == "config_reload_failed")
    assert len(failed["problems"]) == 20
    assert failed["problems_left_out"] == 30


def test_shutdown_never_waits_for_a_slow_reload_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.runtime.reload

    path = write_config(tmp_path / "config.yaml", ["bot"])
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_env_key")
    runtime = runtime_for(path, FakeApi())
    parsing, release = threading.Event(), threading.Event()

    def slow_load(file: Path) -> Config:
        parsing.set()
        release.wait(30)  # a parse of a large config, as long as the test wants
        return load_config(file)

    monkeypatch.setattr(monitor.runtime.reload, "load_config", slow_load)

    async def main() -> None:
        runtime.start()
        runtime.jobs.spawn(runtime.reload("SIGHUP"))
        await asyncio.to_thread(parsing.wait, 10)
        await runtime.stop()  # SIGTERM, as the daemon handles it

    # asyncio.run in a thread of its own, so that the test can see it end while the parse
    # still runs: before, asyncio.run waited for the parse's executor thread at exit.
    ended = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    try:
        ended.start()
        wait_until(lambda: parsing.is_set() and not ended.is_alive(), 10, "asyncio.run to end")
    finally:
        release.set()
        ended.join(30)
