"""Reload: read the config and the keys again (off the event loop, in a thread shutdown never
waits for), and hand them over; a bad config or key file keeps everything that runs.

No change to a file is ever taken as seen unless it was read: each file is fingerprinted
before it is read, and those fingerprints, not the files as they are once the reload is
done, are what the next look at the files compares with. A file saved while the previous
version is parsed, or a key rotated just after it was read, differs from what was
remembered and is loaded at the next look (an extra reload at worst, never a lost one).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from monitor.config.errors import ConfigError
from monitor.config.holder import ConfigHolder
from monitor.config.keys import KeyReader, refuse_agents_with_key
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.config.watcher import Fingerprint, fingerprint
from monitor.model import Health

log = structlog.get_logger("monitor")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did: the fields to log, and the top-level keys of the new config it could
    not apply in a running process (they wait for a restart), with a line saying why."""

    fields: dict[str, Any]
    not_applied: tuple[str, ...] = ()
    detail: str = ""


Apply = Callable[[Config, dict[str, str]], Applied]


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
        self._lock = asyncio.Lock()  # one look at the files or reload at a time
        # Each watched file -> its fingerprint when it was last read (at start: now).
        self._seen: dict[Path, Fingerprint] = {p: fingerprint(p) for p in self._watched()}

    def _watched(self) -> list[Path]:
        return [self._path, *key_files(self._settings.current.config, self._path.parent)]

    async def check_files(self) -> bool:
        """Reload if the config file or a key file changed; True if a reload was done."""
        async with self._lock:
            seen = dict(self._seen)
            changed = await off_loop(lambda: [p for p, f in seen.items() if fingerprint(p) != f])
            if not changed:
                return False
            cause = "file changed" if self._path in changed else "key file changed"
            await self._reload(cause)
            return True

    async def reload(self, cause: str) -> bool:
        """Load the config and keys again; keep the running ones if either is bad. True if
        the new config was applied whole."""
        async with self._lock:
            return await self._reload(cause)

    async def _reload(self, cause: str) -> bool:
        read: dict[Path, Fingerprint] = {}  # filled by _load, before each file is read
        try:
            config, keys = await off_loop(lambda: self._load(read))
        except ConfigError as exc:
            # What was read is what is known: a bad file is not retried every tick, and a
            # change to any file read (a key file the new config names, too) is looked at.
            self._seen = read
            self._health.config_reload_ok = False
            # Bounded by ConfigError itself: a huge bad file never makes a huge line.
            log.error(
                "config_reload_failed",
                cause=cause,
                problems=exc.shown,
                problems_left_out=exc.left_out,
            )
            return False
        except Exception:
            self._seen = read  # nor is a file that crashes the load
            raise
        # Before the apply: a file that changes from here on differs from what is known.
        self._seen = {p: read[p] for p in [self._path, *key_files(config, self._path.parent)]}
        applied = self._apply(config, keys)
        if applied.not_applied:
            # Everything else is applied, but the process does not run what the file says:
            # not a success (`config_last_reload_successful` 0) until a reload applies whole.
            self._health.config_reload_ok = False
            log.warning(
                "config_reload_partial",
                cause=cause,
                keys=list(applied.not_applied),
                detail=applied.detail,
                **applied.fields,
            )
            return False
        self._health.config_reload_ok = True
        self._health.config_reload_at = self._clock()
        log.info("config_reloaded", cause=cause, **applied.fields)
        return True

    def _load(self, read: dict[Path, Fingerprint]) -> tuple[Config, dict[str, str]]:
        """The config and its keys; each file is fingerprinted into `read` before it is read
        (the running config's key files first: the new config may keep them)."""
        for path in self._watched():
            read[path] = fingerprint(path)
        config = load_config(self._path)
        for path in key_files(config, self._path.parent):
            read.setdefault(path, fingerprint(path))
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
