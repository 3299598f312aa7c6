"""Reload: read the config and the keys again (off the event loop, in a thread shutdown never
waits for), and hand them over; a bad config or key file keeps everything that runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from monitor.config.errors import ConfigError
from monitor.config.holder import ConfigHolder
from monitor.config.keys import KeyReader, refuse_agents_with_key
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.config.watcher import FileWatcher
from monitor.model import Health

log = structlog.get_logger("monitor")
T = TypeVar("T")


Apply = Callable[[Config, dict[str, str]], dict[str, Any]]  # returns fields to log


def key_files(config: Config, base: Path) -> list[Path]:
    """The key files a config reads, resolved as `read_api_key` resolves them."""
    files = []
    for workspace in config.resolved_workspaces():
        path = workspace.api_key_file
        if path is not None:
            files.append(path if path.is_absolute() else base / path)
    return files


async def off_loop(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread of its own, awaited without blocking the loop.

    Not asyncio.to_thread: asyncio.run waits for the default executor's threads at exit, so
    SIGTERM during the parse of a large config waited for the parse (6.9 s for 4 MiB). A
    daemon thread is simply dropped at exit, and its result with it.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():  # cancelled: nobody waits for it any more
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task, which sees it raised
            error = exc
        # A closed loop: the process is ending and nobody wants the result.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="monitor-reload", daemon=True).start()
    return await done


class Reloader:
    def __init__(
        self,
        path: Path,
        read_key: KeyReader,
        settings: ConfigHolder,
        apply: Apply,
        *,
        health: Health,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._read_key = read_key
        self._apply = apply
        self._settings = settings
        self._health = health
        self._clock = clock
        self._lock = asyncio.Lock()
        self.watcher = FileWatcher()
        self.watcher.remember(self._watched())

    def _watched(self) -> list[Path]:
        return [self._path, *key_files(self._settings.current.config, self._path.parent)]

    async def check_files(self) -> bool:
        """Reload if the config file or a key file changed; True if a reload was done."""
        watched = self._watched()
        changed = await off_loop(lambda: self.watcher.changed(watched))
        if not changed:
            return False
        cause = "file changed" if self._path in changed else "key file changed"
        await self.reload(cause)
        return True

    async def reload(self, cause: str) -> bool:
        """Load the config and keys again; keep the running ones if either is bad."""
        async with self._lock:
            # What is read now is what is known: a bad file is not retried every tick.
            self.watcher.remember(self._watched())
            try:
                config, keys = await off_loop(self._load)
            except ConfigError as exc:
                self._health.config_reload_ok = False
                # Bounded by ConfigError itself: a huge bad file never makes a huge line.
                log.error(
                    "config_reload_failed",
                    cause=cause,
                    problems=exc.shown,
                    problems_left_out=exc.left_out,
                )
                return False
            fields = self._apply(config, keys)
            self.watcher.remember(self._watched())
            self._health.config_reload_ok = True
            self._health.config_reload_at = self._clock()
            log.info("config_reloaded", cause=cause, **fields)
            return True

    def _load(self) -> tuple[Config, dict[str, str]]:
        config = load_config(self._path)
        problems: list[str] = []
        keys: dict[str, str] = {}
        for workspace in config.resolved_workspaces():
            try:
                keys[workspace.name] = self._read_key(workspace)
            except ConfigError as exc:
                problems.extend(exc.all_problems)
        if problems:
            raise ConfigError(problems)
        refuse_agents_with_key(config, keys)
        return config, keys
