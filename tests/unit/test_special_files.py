"""A FIFO (or any file that is not a regular file) at the config path or a key path is a
one-line config error naming the path: never an open() that waits for a writer, holding the
command, the file watch or shutdown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.conftest import CANARY_KEY

# Before, the command waited for a writer for good: it must end well within this.
pytestmark = pytest.mark.timeout(20)


def _config(path: Path, base_url: str, key_file: Path | None = None) -> Path:
    key_line = f"  api_key_file: {key_file}\n" if key_file else ""
    path.write_text(
        f"elevenlabs:\n{key_line}  base_url: {base_url}\n  max_retries: 0\n"
        "agents:\n  - id: bot\npoll:\n  interval: 1h\n  jitter: 0\n"
        "server:\n  host: 127.0.0.1\n  port: 0\n"
    )
    return path


@pytest.mark.parametrize("command", ["validate-config", "check", "run"])
def test_a_fifo_at_the_config_path_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    done = run_cli(command, "--config", str(fifo), key=CANARY_KEY)
    assert done.returncode == (3 if command == "check" else 2)  # `check`: UNKNOWN
    assert done.stderr == f"error: {fifo}: cannot read the config: not a regular file (a FIFO)\n"


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_fifo_at_the_key_path_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    config = _config(tmp_path / "config.yaml", "http://127.0.0.1:9", fifo)
    done = run_cli(command, "--config", str(config))
    assert done.returncode == (3 if command == "check" else 2)  # `check`: UNKNOWN
    assert done.stderr == (
        f"error: elevenlabs.api_key_file: cannot read the API key from {fifo}: "
        "not a regular file (a FIFO)\n"
    )
