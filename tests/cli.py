"""The CLI in-process: `monitor.cli.main` called as `run_monitor` runs it in a child process,
with the same environment rules, and everything it changes put back afterwards.

For the one-shot commands whose result is an exit status and some output (`validate-config`,
`check`, and `run` refusing its config before it starts). A few tests in tests/integration
still run the real console entry point.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from monitor import logs
from monitor.cli import main

# Never inherited from the caller, as with run_monitor: only what the test gives.
INHERITED = ("ELEVENLABS_API_KEY", "MONITOR_CONFIG", "MONITOR_SHARD")


@dataclass(frozen=True)
class Done:
    """What a finished command left, shaped like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, key: str | None = None, cwd: Path | None = None, **env: str) -> Done:
    """One command of the CLI, in this process, to its end. The API key only when given."""
    out, err = io.StringIO(), io.StringIO()
    with ExitStack() as stack:
        stack.enter_context(_environment(key, env))
        if cwd is not None:
            stack.enter_context(_directory(cwd))
        stack.enter_context(logging_restored())
        stack.enter_context(redirect_stdout(out))
        stack.enter_context(redirect_stderr(err))
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --version, usage errors
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return Done(code, out.getvalue(), err.getvalue())


@contextmanager
def _environment(key: str | None, env: dict[str, str]) -> Iterator[None]:
    names = {*INHERITED, *env}
    saved = {name: os.environ.get(name) for name in names}
    for name in INHERITED:
        os.environ.pop(name, None)
    if key is not None:
        os.environ["ELEVENLABS_API_KEY"] = key
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def logging_restored() -> Iterator[None]:
    """`check` and `run` configure logging and register the keys they read as secrets: a
    process would drop both at its exit; here they are put back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = [logging.getLogger(name) for name in (*logs._QUIET_LIBRARIES, "uvicorn.access")]
    levels = [(logger, logger.level, logger.disabled) for logger in named]
    config: dict[str, Any] = structlog.get_config()
    secrets = set(logs._secrets)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for logger, was, disabled in levels:
            logger.setLevel(was)
            logger.disabled = disabled
        structlog.configure(**config)
        logs._secrets.clear()
        logs._secrets.update(secrets)
