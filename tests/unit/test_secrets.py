"""The API key is a credential: a key file that is not one printable line, or an agent whose
id or name holds a key, is refused with one line that does not quote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.errors import ConfigError
from monitor.config.keys import refuse_agents_with_key
from monitor.config.loading import parse_config
from tests.cli import run_cli
from tests.conftest import CANARY_KEY, KEY_IN_AGENT_PROBLEM, assert_clean


@pytest.mark.parametrize(
    "content",
    [
        f"{CANARY_KEY}\nsecond line\n",
        f"{CANARY_KEY}\r\n{CANARY_KEY}\n",
        f"{CANARY_KEY}\x00\n",
        f"{CANARY_KEY}\tx\n",
        f"{CANARY_KEY}é\n",
    ],
    ids=["two-lines", "twice", "nul", "tab", "non-ascii"],
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_key_file_must_hold_one_printable_line(
    tmp_path: Path, command: str, content: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content.encode())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"elevenlabs:\n  api_key_file: {key_file}\n  base_url: http://127.0.0.1:9\n"
        "agents:\n  - id: a\nserver:\n  host: 127.0.0.1\n  port: 0\n"
    )
    done = run_cli(command, "--config", str(config))
    assert done.returncode == (3 if command == "check" else 2)  # `check`: UNKNOWN
    assert done.stderr == (
        f"error: elevenlabs.api_key_file: {key_file} must hold exactly one line, "
        "the API key (printable ASCII)\n"
    )
    assert_clean("the refusal", done.stdout + done.stderr)


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize(
    "agent",
    [f"{{id: {CANARY_KEY}}}", f'{{id: bot2, name: "key {CANARY_KEY} here"}}'],
    ids=["id", "name"],
)
def test_an_agent_holding_the_key_is_refused_at_start(
    tmp_path: Path, command: str, agent: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "elevenlabs:\n  base_url: http://127.0.0.1:9\n"
        f"agents:\n  - id: bot\n  - {agent}\nserver:\n  host: 127.0.0.1\n  port: 0\n"
    )
    done = run_cli(command, "--config", str(config), key=CANARY_KEY)
    assert done.returncode == (3 if command == "check" else 2)  # `check`: UNKNOWN
    assert done.stderr == f"error: workspace 'default': agents[1]: {KEY_IN_AGENT_PROBLEM}\n"
    assert_clean("the refusal", done.stdout + done.stderr)


def test_an_agent_holding_another_workspaces_key_is_refused() -> None:
    config = parse_config(
        "workspaces:\n"
        "  - {name: a, api_key_env: KEY_A, agents: [{id: x}]}\n"
        "  - {name: b, api_key_env: KEY_B, agents: [{id: y}, {id: z, name: sk_a_secret}]}\n"
    )
    refuse_agents_with_key(config, {"a": "sk_other", "b": "sk_b_secret"})
    with pytest.raises(ConfigError) as refused:
        refuse_agents_with_key(config, {"a": "sk_a_secret", "b": "sk_b_secret"})
    assert refused.value.problems == [
        f"workspace 'b': workspaces[1].agents[1]: {KEY_IN_AGENT_PROBLEM}"
    ]
