"""A key file that becomes a FIFO while the daemon runs: the reload fails with one line naming
it, and SIGTERM still ends the daemon (the file watch never waits in open() for a writer)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link


def test_a_key_file_that_becomes_a_fifo_fails_the_reload_and_sigterm_still_ends_the_daemon(
    standin: StandIn,
    tmp_path: Path,
    write_config: ConfigWriter,
    start_daemon: Callable[..., Daemon],
) -> None:
    standin.set("bot", link(canary_token("f"), None))
    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY + "\n")
    daemon = start_daemon(write_config(["bot"], elevenlabs={"api_key_file": str(key_file)}))
    wait_until(lambda: daemon.state_of("bot") == "ok")
    key_file.unlink()
    os.mkfifo(key_file)  # a careless operator: the file watch notices it on its own
    failed = daemon.wait_for("config_reload_failed")
    assert failed["problems"] == [
        f"elevenlabs.api_key_file: cannot read the API key from {key_file}: "
        "not a regular file (a FIFO)"
    ]
    assert daemon.get("/healthz") == (200, "ok\n")
    daemon.signal(signal.SIGTERM)
    # Before: the watcher's thread waited in open() for a writer, and so did the exit.
    assert daemon.proc.wait(5) == 0
