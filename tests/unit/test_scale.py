"""Discovery, several workspaces and shards, in-process: shards split the agents, configured
names win over listed ones, and `check` discovers too (tests/integration/test_scale.py: the
daemon)."""

from __future__ import annotations

import json

import pytest

from monitor.config.errors import ConfigError
from monitor.config.loading import parse_config
from monitor.config.schema import WorkspaceConfig
from monitor.elevenlabs.pool import client_settings
from monitor.model import AgentKey, Target
from monitor.runtime.targets import Shard, parse_shard, resolve_targets
from tests.cli import Done, run_cli
from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.standin import StandIn, link, status


def test_shards_split_every_agent_exactly_once() -> None:
    keys = [AgentKey(ws, f"agent_{i}") for ws in ("prod", "eu") for i in range(2000)]
    for count in (1, 2, 3, 7):
        owners = [[s for s in range(count) if Shard(s, count).owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o == [s]) for s in range(count)]
        assert min(sizes) > len(keys) / count * 0.85  # roughly even


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b", "2/0"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_shard(text)
    assert caught.value.problems == [f"--shard: {text!r} is not a shard N/M with 0 <= N < M"]


def test_the_shard_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_SHARD", "1/4")
    assert parse_shard(None) == Shard(1, 4)
    monkeypatch.setenv("MONITOR_SHARD", "9/4")
    with pytest.raises(ConfigError, match="MONITOR_SHARD: '9/4'"):
        parse_shard(None)
    monkeypatch.delenv("MONITOR_SHARD")
    assert parse_shard(None) is None


def test_each_replica_gets_its_share_of_the_rate() -> None:
    workspace = WorkspaceConfig(name="prod", max_requests_per_second=12)
    assert client_settings(workspace, 3).max_requests_per_second == 4
    assert client_settings(workspace).max_requests_per_second == 12


def test_configured_agents_keep_their_names_over_discovered_ones() -> None:
    config = parse_config(
        "workspaces:\n"
        "  - name: prod\n    discover: true\n    agents:\n      - id: a1\n        name: mine\n"
        "  - name: eu\n    agents:\n      - id: e1\n"
    )
    discovered = {
        "prod": [Target(AgentKey("prod", "a1"), "listed"), Target(AgentKey("prod", "a2"), "two")],
        "eu": [Target(AgentKey("eu", "ignored"), "not discovering")],
    }
    targets = resolve_targets(config, discovered)
    assert sorted((t.key.workspace, t.key.agent_id, t.name) for t in targets) == [
        ("eu", "e1", ""),
        ("prod", "a1", "mine"),
        ("prod", "a2", "two"),
    ]
    only = resolve_targets(config, discovered, Shard(0, 2)) + resolve_targets(
        config, discovered, Shard(1, 2)
    )
    assert sorted(t.key for t in only) == sorted(t.key for t in targets)


def test_a_malformed_shard_exits_2_before_starting(write_config: ConfigWriter) -> None:
    done = run_cli("run", "--config", str(write_config(["a"])), "--shard", "3/3", key="sk_x")
    assert done.returncode == 2
    assert done.stderr == "error: --shard: '3/3' is not a shard N/M with 0 <= N < M\n"


def test_check_discovers_too_and_says_when_the_listing_fails(
    standin: StandIn, write_config: ConfigWriter
) -> None:
    standin.listing = [("listed", "from-listing", False)]
    standin.set("listed", link(canary_token("l"), None))
    standin.set("configured", link(canary_token("c"), None))
    path = write_config(["configured"], discover=True)

    def check() -> Done:
        return run_cli("check", "--config", str(path), "--output", "json", key=CANARY_KEY)

    done = check()
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["agents"]
    assert [(r["agent_id"], r["agent_name"]) for r in rows] == [
        ("configured", "configured-name"),
        ("listed", "from-listing"),
    ]
    standin.listing = status(500)
    done = check()
    assert [r["agent_id"] for r in json.loads(done.stdout)["agents"]] == ["configured"]
    assert json.loads(done.stderr.splitlines()[0])["event"] == "discovery_failed"
