"""A discovered agent id skipped as unsafe is logged so the operator can find the agent:
escaped (a terminal shows it as is), cut to 64 characters (saying so), and with any API key
redacted before the cut, so that no half of a key survives."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict

from monitor import logs
from monitor.model import AgentSummary
from monitor.runtime.targets import listed_targets

KEY = "sk_unsafe_ids_key_0123456789abcdef0123456789"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", set())
    logs.register_secret(KEY)


def skipped(agent_id: str) -> EventDict:
    listing = [AgentSummary(agent_id=agent_id, name="n"), AgentSummary(agent_id="ok", name="")]
    with capture_logs() as lines:
        targets = listed_targets("prod", listing)
    assert [t.key.agent_id for t in targets] == ["ok"]
    [line] = [line for line in lines if line["event"] == "discovered_agent_skipped"]
    assert line["workspace"] == "prod"
    assert line["id_length"] == len(agent_id)
    return line


def test_an_unsafe_id_is_logged_escaped() -> None:
    line = skipped("../admin\x1b[2J\u202egnp.exe\\x1b\n")
    assert line.get("agent_id") == "../admin\\x1b[2J\\u202egnp.exe\\\\x1b\\n"
    assert line.get("agent_id_cut") is False


def test_a_long_id_is_cut_to_64_characters_and_says_so() -> None:
    agent_id = "a/" + "b" * 198
    line = skipped(agent_id)
    assert line.get("agent_id") == agent_id[:64]
    assert line.get("agent_id_cut") is True


def test_an_escape_is_never_cut_in_half() -> None:
    line = skipped("a/" + "b" * 60 + "\x1b" + "c" * 10)
    assert line.get("agent_id") == "a/" + "b" * 60  # `\x1b` would end at 66: left out whole
    assert line.get("agent_id_cut") is True


def test_a_key_across_the_cut_is_redacted_before_the_cut() -> None:
    agent_id = "a/" + "b" * 40 + KEY + "c" * 30  # the key straddles character 64
    line = skipped(agent_id)
    # Cut first, then redacted, 22 characters of the key would have been left unrecognised.
    assert line.get("agent_id") == "a/" + "b" * 40 + "[REDACTED]" + "c" * 12
    assert line.get("agent_id_cut") is True
    assert KEY[:8] not in str(line)


def test_an_id_carrying_the_key_is_logged_redacted() -> None:
    line = skipped(f"agent-{KEY}")
    assert line["reason"] == "the agent id carries a secret"
    assert line.get("agent_id") == "agent-[REDACTED]"
    assert line.get("agent_id_cut") is False


def test_many_unsafe_ids_are_logged_a_few_then_counted() -> None:
    listing = [AgentSummary(agent_id=f"../{i}", name="") for i in range(10_000)]
    with capture_logs() as lines:
        assert listed_targets("prod", listing) == []
    one_by_one = [line for line in lines if line["event"] == "discovered_agent_skipped"]
    assert [line["agent_id"] for line in one_by_one] == ["../0", "../1", "../2", "../3", "../4"]
    [summary] = [line for line in lines if line["event"] == "discovered_agents_skipped"]
    assert summary == {
        "event": "discovered_agents_skipped",
        "log_level": "warning",
        "workspace": "prod",
        "count": 10_000,
        "logged": 5,
    }
    assert len(lines) == 6
