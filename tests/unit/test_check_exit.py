"""`check` is read as a Nagios plugin: 1 and 2 are the agents' verdicts, so a config error or
an internal error is 3 (UNKNOWN), with one line on stderr and no traceback. `validate-config`
and `run` keep 2 for a config error. In-process: `monitor.cli.main` is called directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor import cli
from monitor.model import AgentKey
from monitor.runtime.poller import Poller
from tests.cli import logging_restored
from tests.conftest import config_data

KEY = "sk_check_exit_test_key_5e4d3c2b1a"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`check` points logging at the (captured) stderr; leave it as it was for later tests."""
    with logging_restored():
        yield


def good_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    path = tmp_path / "config.yaml"
    # Nothing listens there: the tests below never let a request go out.
    path.write_text(yaml.safe_dump(config_data("http://127.0.0.1:9", ["bot"])))
    return path


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_check_with_a_config_that_cannot_be_read_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"
    assert cli.main(["check", "--config", str(missing)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        one_error_line(err)
        == f"error: {missing}: cannot read the config: No such file or directory"
    )


def test_check_with_an_invalid_config_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("agents:\n  - id: a\n    nam: typo\n")
    assert cli.main(["check", "--config", str(bad)]) == 3
    assert "agents[0].nam: unknown key" in one_error_line(capsys.readouterr().err)


def test_check_without_a_key_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config(tmp_path, monkeypatch)
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    assert cli.main(["check", "--config", str(path)]) == 3
    assert "ELEVENLABS_API_KEY" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            RuntimeError(f"poller broke\non bot with {KEY}"),
            "error: internal error: RuntimeError: poller broke\\non bot with [REDACTED]",
        ),
        (OSError(24, "Too many open files"), "error: Too many open files"),
    ],
    ids=["internal", "os"],
)
def test_check_with_an_internal_error_is_unknown_in_one_line(
    error: Exception,
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = good_config(tmp_path, monkeypatch)

    async def broken(self: Poller, key: AgentKey, deadline: float | None = None) -> None:
        raise error

    monkeypatch.setattr(Poller, "poll", broken)
    assert cli.main(["check", "--config", str(path)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert one_error_line(err) == line  # escaped to one line, the key redacted


@pytest.mark.parametrize("command", ["validate-config", "run"])
def test_other_commands_keep_2_for_a_config_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("agents:\n  - id: a\n    nam: typo\n")
    assert cli.main([command, "--config", str(bad)]) == 2
    assert "agents[0].nam: unknown key" in one_error_line(capsys.readouterr().err)
