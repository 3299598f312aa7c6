"""Config bounds: a value no operator means (a unit missed, a digit too many) is refused by
validate-config, so a validated config never crashes `run`; a huge file is refused unread;
a failed load reports a bounded number of problems and says how many it left out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config.errors import MAX_PROBLEM_CHARS, SHOWN_PROBLEMS, ConfigError
from monitor.config.loading import MAX_CONFIG_BYTES, parse_config
from tests.cli import run_cli


def _write(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"agents": [{"id": "a"}], **config}))
    return path


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"poll": {"interval": "2d"}}, "poll: interval (2d) must be at most 1d"),
        (
            {"poll": {"discovery_interval": "1000000d"}},
            "poll: discovery_interval (1000000d) must be at most 1d",
        ),
        ({"elevenlabs": {"timeout": "1h"}}, "elevenlabs.timeout: timeout (1h) must be at most 5m"),
        (
            {"thresholds": {"warning": "5000000w", "critical": "1d"}},
            "thresholds: warning (5000000w) must be at most 3650d",
        ),
        (
            {"alerts": {"repeat_interval": "31d"}},
            "alerts.repeat_interval: repeat_interval (31d) must be at most 30d",
        ),
        (
            {"elevenlabs": {"max_requests_per_second": 1e300}},
            "elevenlabs.max_requests_per_second: Input should be less than or equal to 10000",
        ),
        (
            {"elevenlabs": {"max_requests_per_second": 1e-300}},
            "elevenlabs.max_requests_per_second: Input should be greater than or equal to 0.001",
        ),
    ],
    ids=["interval", "discovery", "timeout", "threshold", "repeat", "rate-high", "rate-low"],
)
def test_validate_config_refuses_an_absurd_value(
    tmp_path: Path, section: dict[str, object], problem: str
) -> None:
    path = _write(tmp_path, section)
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {path}:")
    assert line.endswith(problem)


@pytest.mark.parametrize(
    "section",
    [
        {"poll": {"interval": "1d", "jitter": "1h", "discovery_interval": "1d"}},
        {"elevenlabs": {"timeout": "5m", "max_requests_per_second": 10000}},
        {"elevenlabs": {"max_requests_per_second": 0.001}},
        {"thresholds": {"warning": "3650d", "critical": "3649d"}},
        {"alerts": {"repeat_interval": "30d"}},
    ],
)
def test_the_bounds_themselves_are_valid(tmp_path: Path, section: dict[str, object]) -> None:
    done = run_cli("validate-config", "--config", str(_write(tmp_path, section)))
    assert done.returncode == 0, done.stderr


def test_a_config_above_the_size_limit_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    with path.open("w") as file:
        file.write("agents:\n")
        line = "  - id: agent_0000000000000000\n"
        file.write(line * (MAX_CONFIG_BYTES // len(line) + 1))
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr == f"error: {path}: the config is larger than 4 MiB: refused unread\n"


def test_a_failed_load_reports_a_bounded_number_of_problems() -> None:
    text = "agents:\n" + "".join(f"  - id: a{n}\n    nam: x\n" for n in range(500))
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml")
    problems = caught.value.problems
    assert len(problems) == SHOWN_PROBLEMS + 1
    assert problems[-1] == f"and {500 - SHOWN_PROBLEMS} more problems"
    assert len(caught.value.all_problems) == 500


def test_a_problem_line_is_bounded_too() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"poll:\n  interval: {'x' * 1_000_000}\nagents: [{{id: a}}]\n", "c.yaml")
    (problem,) = caught.value.problems
    assert len(problem) <= MAX_PROBLEM_CHARS
    assert problem.startswith("c.yaml:2: poll.interval: invalid duration 'xxx")


def test_validate_config_prints_the_bounded_list(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("agents:\n" + "".join(f"  - id: a{n}\n    nam: x\n" for n in range(100)))
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == SHOWN_PROBLEMS + 1
    assert lines[-1] == "error: and 80 more problems"


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"elevenlabs": {"max_requests_per_second": True}}, "elevenlabs.max_requests_per_second"),
        ({"elevenlabs": {"max_concurrency": True}}, "elevenlabs.max_concurrency"),
        ({"elevenlabs": {"max_retries": False}}, "elevenlabs.max_retries"),
        ({"server": {"port": True}}, "server.port"),
    ],
    ids=["rate", "concurrency", "retries", "port"],
)
def test_a_boolean_is_not_a_number(section: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(yaml.safe_dump({"agents": [{"id": "a"}], **section}), "c.yaml")
    (line,) = refused.value.problems
    assert f": {field}: must be a number, not " in line


@pytest.mark.parametrize(
    "host", ["999.1.1.1", "1.2.3", "256.0.0.1", "bad host", "-lead.example", "a..b", ""]
)
def test_validate_config_refuses_a_host_that_cannot_be_bound(tmp_path: Path, host: str) -> None:
    path = _write(tmp_path, {"server": {"host": host}})
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {path}:")
    assert line.endswith(f"server.host: {host!r} is not an IP address or a host name")


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "127.0.0.1", "::", "::1", "localhost", "monitor.example.com", "x-1."]
)
def test_addresses_and_host_names_are_valid_hosts(host: str) -> None:
    config = parse_config(yaml.safe_dump({"agents": [{"id": "a"}], "server": {"host": host}}))
    assert config.server.host == host
