"""Owner labels: `labels:` on a workspace and on an agent, checked at load one line per bad
key, merged key by key (workspace, agent, over a discovered agent's tag labels), and carried
by `elevenlabs_agent_info` in both exposition formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.holder import ConfigHolder, Settings
from monitor.config.loading import parse_config
from monitor.config.schema import Config
from monitor.evaluate import Thresholds
from monitor.model import AgentKey, Health, Target, merge_labels
from monitor.peragent import PerAgent
from monitor.runtime.targets import resolve_targets
from monitor.store import Store
from monitor.web.metrics import Metrics
from tests.cli import run_cli
from tests.unit.test_config import problems

NOW = 1_800_000_000.0
RESERVED = "(agent_id, agent_name, alertname, instance, job, level, namespace, reason, severity, state, workspace)"


def single(**sections: Any) -> Config:
    return Config.model_validate({"agents": [{"id": "a"}], **sections})


# --- refused at load, one line per key ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("__x", "'__x': names starting with __ are reserved by Prometheus"),
        ("job", f"'job' is one of the monitor's own labels {RESERVED}"),
        ("agent_name", f"'agent_name' is one of the monitor's own labels {RESERVED}"),
        ("severity", f"'severity' is one of the monitor's own labels {RESERVED}"),
        ("level", f"'level' is one of the monitor's own labels {RESERVED}"),
        ("1abc", "'1abc' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
        ("a-b", "'a-b' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
    ],
)
def test_a_bad_label_name_is_one_line_naming_the_key(name: str, why: str) -> None:
    text = (
        "elevenlabs: {}\n"
        "labels:\n"
        "  team: support\n"
        "agents:\n"
        "  - id: fine\n"
        "  - id: agent_1\n"
        f"    labels: {{team: payments, {name}: x}}\n"
    )
    assert problems(text) == [f"config.yaml:7: agents[1].labels.{name}: {why}"]


def test_every_bad_key_is_its_own_line_at_every_level() -> None:
    text = (
        "workspaces:\n"
        "  - name: prod\n"
        "    labels: {__x: a, team: ok, job: b}\n"
        "    agents:\n"
        "      - id: a\n"
        "        labels:\n"
        "          a-b: c\n"
    )
    assert sorted(problems(text)) == [
        "config.yaml:3: workspaces[0].labels.__x: "
        "'__x': names starting with __ are reserved by Prometheus",
        f"config.yaml:3: workspaces[0].labels.job: 'job' is one of the monitor's own labels "
        f"{RESERVED}",
        "config.yaml:7: workspaces[0].agents[0].labels.a-b: "
        "'a-b' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
    ]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("'" + "x" * 257 + "'", "a label value is at most 256 characters, not 257"),
        ('"two\\nlines"', "a label value is one line, without control characters"),
        ("12", "a label value must be a string (quote it), not int"),
        ("[a, b]", "a label value must be a string (quote it), not list"),
    ],
)
def test_a_bad_label_value_is_one_line(value: str, why: str) -> None:
    assert problems(f"agents: [{{id: a}}]\nlabels:\n  team: {value}\n") == [
        f"config.yaml:3: labels.team: {why}"
    ]


def test_labels_at_the_top_level_belong_to_the_single_form() -> None:
    text = "labels: {team: a}\nworkspaces:\n  - name: prod\n    agents: [{id: a}]\n"
    assert problems(text) == [
        "config.yaml:1: config: workspaces: cannot be combined with labels: "
        "use one form or the other"
    ]


def test_validate_config_prints_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("agents:\n  - id: a\n    labels: {instance: x}\n")
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {path}:3: agents[0].labels.instance: 'instance' is one of the monitor's own "
        f"labels {RESERVED}\n"
    )


def test_a_label_value_of_exactly_the_bound_is_accepted() -> None:
    config = single(labels={"team": "x" * 256, "env": ""})
    assert config.labels == {"team": "x" * 256, "env": ""}


# --- merged key by key ----------------------------------------------------------------------


def test_an_agents_labels_override_its_workspaces_key_by_key() -> None:
    config = Config.model_validate(
        {
            "labels": {"team": "support", "env": "prod", "tier": "1"},
            "agents": [
                {"id": "plain"},
                {"id": "pay", "labels": {"team": "payments", "cost": "7", "tier": ""}},
            ],
        }
    )
    targets = {t.key.agent_id: t for t in resolve_targets(config)}
    assert targets["plain"].labels == (("env", "prod"), ("team", "support"), ("tier", "1"))
    # An empty value removes what the workspace gives.
    assert targets["pay"].labels == (("cost", "7"), ("env", "prod"), ("team", "payments"))
    settings = Settings.of(config)
    assert settings.labels_for(AgentKey("default", "pay")) == targets["pay"].labels
    assert settings.labels_for(AgentKey("default", "listed-only")) == targets["plain"].labels


def test_configured_labels_win_over_a_discovered_agents_tag_labels() -> None:
    config = Config.model_validate(
        {
            "workspaces": [
                {
                    "name": "prod",
                    "discover": True,
                    "labels": {"team": "platform", "env": "prod"},
                    "agents": [{"id": "both", "labels": {"team": "payments"}}],
                },
                {"name": "bare", "discover": True},
            ]
        }
    )
    tagged = (("owner", "ann"), ("team", "from-tag"))
    found = {
        "prod": [
            Target(AgentKey("prod", "listed"), "l", tagged),
            Target(AgentKey("prod", "both"), "listed-name", tagged),
        ],
        "bare": [Target(AgentKey("bare", "x"), "x", tagged)],
    }
    targets = {t.key: t for t in resolve_targets(Settings.of(config), found)}
    assert targets[AgentKey("prod", "listed")].labels == (
        ("env", "prod"),
        ("owner", "ann"),
        ("team", "platform"),
    )
    assert targets[AgentKey("prod", "both")] == Target(
        AgentKey("prod", "both"),
        "listed-name",
        (("env", "prod"), ("owner", "ann"), ("team", "payments")),
    )
    # A workspace without labels leaves the tag labels as they are.
    assert targets[AgentKey("bare", "x")].labels == tagged


def test_merge_is_sorted_and_drops_empty_values() -> None:
    assert merge_labels([("b", "1"), ("a", "2")], [("b", ""), ("c", "3")]) == (
        ("a", "2"),
        ("c", "3"),
    )


# --- on the info series ---------------------------------------------------------------------


def info_samples(text: str, *, openmetrics: bool = False) -> dict[str, dict[str, str]]:
    parse = (
        openmetrics_parser.text_string_to_metric_families
        if openmetrics
        else text_string_to_metric_families
    )
    return {
        sample.labels["agent_id"]: sample.labels
        for family in parse(text)
        if family.name == "elevenlabs_agent_info"
        for sample in family.samples
    }


def test_the_info_series_carries_each_agents_labels_in_both_formats() -> None:
    config = Config.model_validate(
        {
            "labels": {"team": "support"},
            "agents": [
                {"id": "a", "name": "support-bot"},
                {"id": "b", "name": "pay-bot", "labels": {"team": "pay\\ments", "cc": 'x"y'}},
                {"id": "c", "labels": {"team": ""}},
            ],
        }
    )
    store = Store()
    store.sync(resolve_targets(config))
    metrics = Metrics(store, Health(), ConfigHolder(config), lambda: NOW)
    expected = {
        "a": {
            "workspace": "default",
            "agent_id": "a",
            "agent_name": "support-bot",
            "team": "support",
        },
        "b": {
            "workspace": "default",
            "agent_id": "b",
            "agent_name": "pay-bot",
            "cc": 'x"y',
            "team": "pay\\ments",
        },
        # Another agent, another label set: valid in both formats.
        "c": {"workspace": "default", "agent_id": "c", "agent_name": ""},
    }
    assert info_samples(metrics.render().body().decode()) == expected
    text = metrics.render(openmetrics=True).body().decode()
    assert info_samples(text, openmetrics=True) == expected
    # Only the info series carries them: no other series changes identity with an owner.
    for family in text_string_to_metric_families(metrics.render().body().decode()):
        if family.name != "elevenlabs_agent_info":
            assert all("team" not in s.labels for s in family.samples), family.name


def test_a_label_change_is_a_new_record_and_re_renders_the_agent() -> None:
    """Labels are part of the target and so of the record: the per-agent cache (rendered
    series, search text) rebuilds exactly the agent whose labels changed."""
    built: list[str] = []
    kept = PerAgent(lambda record, _, __: built.append(record.key.agent_id))
    settings = Settings.of(single())
    a, b = AgentKey("default", "a"), AgentKey("default", "b")
    store = Store()
    store.sync([Target(a, "", (("team", "x"),)), Target(b)])
    before = store.get(a)
    kept.refresh(store.snapshot(), NOW, settings)
    assert built == ["a", "b"]
    store.sync([Target(a, "", (("team", "y"),)), Target(b)])
    assert store.get(a) is not before
    assert kept.refresh(store.snapshot(), NOW, settings)
    assert built == ["a", "b", "a"]
    store.sync([Target(a, "", (("team", "y"),)), Target(b)])  # the same labels again
    assert not kept.refresh(store.snapshot(), NOW, settings)
    assert built == ["a", "b", "a"]


def test_a_reload_that_changes_labels_shows_at_the_next_scrape() -> None:
    store = Store()
    holder = ConfigHolder(single(labels={"team": "a"}))
    metrics = Metrics(store, Health(), holder, lambda: NOW)
    store.sync(resolve_targets(holder.current))
    assert info_samples(metrics.render().body().decode())["a"]["team"] == "a"
    holder.swap(
        Config.model_validate(
            yaml.safe_load("labels: {team: a}\nagents: [{id: a, labels: {team: b, env: x}}]")
        )
    )
    store.sync(resolve_targets(holder.current))
    labels = info_samples(metrics.render().body().decode())["a"]
    assert (labels["team"], labels["env"]) == ("b", "x")


def test_the_documented_example_means_what_its_comments_say() -> None:
    """docs/configuration.md, Owners and per-agent thresholds: the example as it is written."""
    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    section = text.split("## Owners and per-agent thresholds", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = Settings.of(parse_config(example, "example.yaml"))
    targets = {t.key.agent_id: t for t in resolve_targets(settings)}
    assert targets["agent_01jz..."].labels == (("env", "prod"), ("team", "support"))
    assert targets["agent_01jy..."].labels == (("env", "prod"), ("team", "payments"))
    assert targets["agent_01jx..."].labels == (("team", "support"),)
    pairs = {
        agent: settings.thresholds_for(AgentKey("default", agent))
        for agent in ("agent_01jz...", "agent_01jy...", "agent_01jx...")
    }
    assert pairs == {
        "agent_01jz...": Thresholds(7 * 86400, 86400),
        "agent_01jy...": Thresholds(30 * 86400, 3 * 86400),
        "agent_01jx...": Thresholds(7 * 86400, 12 * 3600),
    }


def test_the_api_row_and_checks_json_carry_the_owner_labels() -> None:
    """Scripts read who owns an agent where the alerts say it, not by joining the metrics."""
    from monitor.cli import _row
    from monitor.evaluate import State
    from monitor.web.status.figures import agent_row

    store = Store()
    store.sync(
        [
            Target(AgentKey("default", "a"), "", (("team", "payments"),)),
            Target(AgentKey("default", "b")),
        ]
    )
    a, b = store.snapshot()
    assert agent_row(a, State.UNKNOWN, NOW)["labels"] == {"team": "payments"}
    assert agent_row(b, State.UNKNOWN, NOW)["labels"] == {}
    assert _row(a, State.UNKNOWN, NOW)["labels"] == {"team": "payments"}
