"""The console entry point as a real process: `--version` from the installed script, and one
`check` and one `validate-config` run to their end, their environment and working directory
their own. Every other case of these commands runs in-process (tests/unit/test_check.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import run_monitor
from tests.standin import StandIn, link, status


def test_check_reports_unreachable_agents_as_unknown(
    standin: StandIn, write_config: ConfigWriter
) -> None:
    standin.set("ok", link(canary_token("o"), None))
    standin.set("down", status(503))
    done = run_monitor("check", "--config", str(write_config(["ok", "down"])), key=CANARY_KEY)
    assert done.returncode == 3
    table = done.stdout.splitlines()
    assert table[0].split() == [
        "WORKSPACE",
        "AGENT_ID",
        "NAME",
        "STATE",
        "EXPIRES_AT",
        "LEFT",
        "ERROR",
    ]
    assert table[1].split()[:4] == ["default", "down", "down-name", "unknown"]
    assert table[1].split()[-1] == "server_error"
    assert table[2].split()[:4] == ["default", "ok", "ok-name", "ok"]
    # Poll failures are logged on stderr, never mixed into the report.
    assert json.loads(done.stderr.splitlines()[0])["event"] == "poll_failed"


def test_config_defaults_to_monitor_config_then_cwd(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("agents:\n  - id: from_cwd\n")
    other = tmp_path / "other.yaml"
    other.write_text("agents:\n  - id: a\n  - id: b\n")

    def validate(**env: str) -> str:
        return run_monitor("validate-config", cwd=tmp_path, **env).stdout

    assert (
        validate(MONITOR_CONFIG=str(other))
        == f"{other}: valid (1 workspace(s), 2 configured agent(s))\n"
    )
    done_stdout = validate()
    assert done_stdout == "config.yaml: valid (1 workspace(s), 1 configured agent(s))\n"


def test_version_and_console_script() -> None:
    done = run_monitor("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == "elevenlabs-link-monitor 0.1.0"
    script = Path(sys.executable).parent / "elevenlabs-link-monitor"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "elevenlabs-link-monitor 0.1.0"
