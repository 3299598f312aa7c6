"""The config file: durations, the documented examples, every error message, the API key.

Each error test shows a small YAML file and the exact line `validate-config` prints for it:
`file:line: field: message`.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.config.errors import ConfigError
from monitor.config.keys import read_api_key
from monitor.config.loading import load_config, parse_config
from monitor.config.schema import (
    DEFAULT_BASE_URL,
    ApiSettings,
    Config,
    WorkspaceConfig,
    parse_duration,
)

EXAMPLE_CONFIG = Path(__file__).parents[2] / "config.yaml"
SECRET = "sk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # shaped like an ElevenLabs key; must never leak


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def config(text: str) -> Config:
    return parse_config(yaml_text(text), "config.yaml")


def problems(text: str) -> list[str]:
    """The lines `validate-config` would print for this file."""
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml_text(text), "config.yaml")
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


def workspace(text: str) -> WorkspaceConfig:
    (only,) = config(text).resolved_workspaces()
    return only


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 7 * 86400.0),
        ("2w", 14 * 86400.0),
        ("1h30m", 5400.0),
        ("1d12h", 129600.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        (" 10s ", 10.0),
        (90, 90.0),
        (2.5, 2.5),
        (0, 0.0),
        ("45", 45.0),
        ("0.25", 0.25),
    ],
)
def test_a_duration_is_seconds_or_a_number_with_units(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


NOT_A_DURATION = "a duration must be a number of seconds or a string such as 30s, 5m, 1h"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "a duration cannot be negative, got -1"),
        (-0.5, "a duration cannot be negative, got -0.5"),
        (True, NOT_A_DURATION),
        (False, NOT_A_DURATION),
        (None, NOT_A_DURATION),
        ([30], NOT_A_DURATION),
        ({"s": 30}, NOT_A_DURATION),
        ("", "invalid duration '': use seconds or a string such as 30s, 5m, 1h, 7d, 2w"),
        ("-5s", "invalid duration '-5s': use seconds or a string such as 30s, 5m, 1h, 7d, 2w"),
        ("-5", "invalid duration '-5': use seconds or a string such as 30s, 5m, 1h, 7d, 2w"),
        (
            "5 minutes",
            "invalid duration '5 minutes': use seconds or a string such as 30s, 5m, 1h, 7d, 2w",
        ),
        ("1y", "invalid duration '1y': use seconds or a string such as 30s, 5m, 1h, 7d, 2w"),
        ("h", "invalid duration 'h': use seconds or a string such as 30s, 5m, 1h, 7d, 2w"),
        (
            "1h 30m",
            "invalid duration '1h 30m': use seconds or a string such as 30s, 5m, 1h, 7d, 2w",
        ),
        (math.nan, "a duration must be finite, got nan"),
        (math.inf, "a duration must be finite, got inf"),
        ("9" * 400 + "s", f"a duration must be finite, got '{'9' * 400}s'"),
    ],
)
def test_a_duration_refuses_negatives_booleans_and_garbage(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        parse_duration(value)
    assert str(caught.value) == message


def test_durations_in_the_file_become_seconds() -> None:
    loaded = config(
        """
        agents:
          - id: agent_1
        elevenlabs:
          timeout: 1500ms
        poll:
          interval: 1h30m
          jitter: 45
          discovery_interval: "600"
        thresholds:
          warning: 2w
          critical: 3d
        alerts:
          repeat_interval: 90m
        """
    )
    assert loaded.elevenlabs is not None
    assert loaded.elevenlabs.timeout == 1.5
    assert (loaded.poll.interval, loaded.poll.jitter, loaded.poll.discovery_interval) == (
        5400.0,
        45.0,
        600.0,
    )
    assert (loaded.thresholds.warning, loaded.thresholds.critical) == (14 * 86400.0, 3 * 86400.0)
    assert loaded.alerts.repeat_interval == 5400.0


def test_a_bad_duration_in_the_file_names_field_and_line() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
        poll:
          interval: 5 minutes
          jitter: -3
        """
    ) == [
        "config.yaml:4: poll.interval: invalid duration '5 minutes': "
        "use seconds or a string such as 30s, 5m, 1h, 7d, 2w",
        "config.yaml:5: poll.jitter: a duration cannot be negative, got -3",
    ]


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_a_duration_in_the_file_must_be_finite(value: str) -> None:
    assert problems(
        f"""
        agents:
          - id: agent_1
        poll:
          interval: {value}
        """
    ) == [f"config.yaml:4: poll.interval: a duration must be finite, got {value[1:]}"]


# --- the documented examples -----------------------------------------------------------------


def test_the_commented_example_config_file_is_valid() -> None:
    loaded = load_config(EXAMPLE_CONFIG)
    for each in loaded.resolved_workspaces():
        assert each.agents or each.discover


def test_the_contract_example_is_valid_and_means_what_its_comments_say() -> None:
    loaded = config(
        """
        elevenlabs:
          base_url: https://api.elevenlabs.io     # default
          api_key_env: ELEVENLABS_API_KEY          # default: the variable that holds the key
          # api_key_file: /run/secrets/elevenlabs-api-key   # alternative to api_key_env
          timeout: 10s
          max_concurrency: 8                       # requests in flight at once
          max_requests_per_second: 5               # never exceeded, retries included
          max_retries: 3                           # for 429, 5xx, timeouts, connection errors
        agents:                                    # may be empty when discover is true
          - id: agent_01jz...
            name: support-bot                      # optional; the agent_name label
        discover: false                            # also watch every agent the key can list
        poll:
          interval: 5m
          jitter: 10s
        thresholds:
          warning: 7d                              # must be greater than critical
          critical: 1d
        alerts:
          repeat_interval: 1h                      # re-log an unresolved alert this often
        server:
          host: 0.0.0.0
          port: 9877
        metrics:
          expose_relative: false                   # see Metrics
        logging:
          level: info
          format: json                             # json | console
        """
    )
    assert loaded.elevenlabs == ApiSettings(
        base_url="https://api.elevenlabs.io",
        api_key_env="ELEVENLABS_API_KEY",
        timeout=10.0,
        max_concurrency=8,
        max_requests_per_second=5.0,
        max_retries=3,
    )
    assert [(a.id, a.name) for a in loaded.agents] == [("agent_01jz...", "support-bot")]
    assert loaded.discover is False
    assert (loaded.poll.interval, loaded.poll.jitter) == (300.0, 10.0)
    assert (loaded.thresholds.warning, loaded.thresholds.critical) == (604800.0, 86400.0)
    assert loaded.alerts.repeat_interval == 3600.0
    assert (loaded.server.host, loaded.server.port) == ("0.0.0.0", 9877)
    assert loaded.metrics.expose_relative is False
    assert (loaded.logging.level, loaded.logging.format) == ("info", "json")


def test_the_contract_workspaces_example_is_valid() -> None:
    loaded = config(
        """
        poll:
          discovery_interval: 15m
          spread: true
        workspaces:
          - name: prod
            base_url: https://api.elevenlabs.io
            api_key_env: ELEVENLABS_API_KEY_PROD
            timeout: 10s
            agents:
              - id: agent_01jz...
                name: support-bot
            discover: true
          - name: eu
            base_url: https://api.eu.residency.elevenlabs.io
            api_key_env: ELEVENLABS_API_KEY_EU
            discover: true
        """
    )
    assert loaded.poll.discovery_interval == 900.0
    assert [
        (w.name, w.base_url, w.api_key_env, w.discover) for w in loaded.resolved_workspaces()
    ] == [
        ("prod", "https://api.elevenlabs.io", "ELEVENLABS_API_KEY_PROD", True),
        ("eu", "https://api.eu.residency.elevenlabs.io", "ELEVENLABS_API_KEY_EU", True),
    ]


def test_an_empty_list_of_agents_is_fine_when_discover_is_true() -> None:
    assert config("agents: []\ndiscover: true\n").resolved_workspaces()[0].discover is True


def test_yaml_anchors_and_merge_keys_can_share_workspace_settings() -> None:
    loaded = config(
        """
        workspaces:
          - &prod
            name: prod
            api_key_env: KEY_PROD
            timeout: 5s
            discover: true
          - <<: *prod
            name: eu
            api_key_env: KEY_EU
        """
    )
    assert [(w.name, w.api_key_env, w.timeout) for w in loaded.resolved_workspaces()] == [
        ("prod", "KEY_PROD", 5.0),
        ("eu", "KEY_EU", 5.0),
    ]


def test_a_trailing_slash_on_base_url_is_dropped() -> None:
    assert workspace(
        """
        elevenlabs:
          base_url: https://proxy.example/elevenlabs/
        agents: [{id: agent_1}]
        """
    ).base_url == ("https://proxy.example/elevenlabs")


# --- every validation error ------------------------------------------------------------------

UNKNOWN = "unknown key (check the spelling; unknown keys are errors)"


def test_an_unknown_top_level_key_is_an_error_on_its_line() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
        thresold:
          warning: 7d
        """
    ) == [f"config.yaml:3: thresold: {UNKNOWN}"]


def test_an_unknown_nested_key_is_an_error_on_its_line() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
        poll:
          interval: 5m
          intervall: 6m
        """
    ) == [f"config.yaml:5: poll.intervall: {UNKNOWN}"]


def test_an_unknown_key_inside_a_list_item_names_the_index() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
          - id: agent_2
            nmae: support-bot
        """
    ) == [f"config.yaml:4: agents[1].nmae: {UNKNOWN}"]


def test_an_api_key_written_into_the_file_is_refused_without_echoing_it() -> None:
    found = problems(
        f"""
        elevenlabs:
          api_key: {SECRET}
        agents: [{{id: agent_1}}]
        """
    )
    assert found == [f"config.yaml:2: elevenlabs.api_key: {UNKNOWN}"]
    assert SECRET not in "\n".join(found)


def test_a_duplicate_key_is_an_error_because_the_second_would_silently_win() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
        agents:
          - id: agent_2
        """
    ) == ["config.yaml:3: invalid YAML: duplicate key 'agents'"]


def test_a_duplicate_nested_key_is_an_error_on_its_line() -> None:
    assert problems(
        """
        agents: [{id: agent_1}]
        poll:
          interval: 5m
          jitter: 10s
          interval: 10m
        """
    ) == ["config.yaml:5: invalid YAML: duplicate key 'interval'"]


def test_invalid_yaml_names_the_line() -> None:
    assert problems(
        """
        agents: [agent_1
        poll:
          interval: 5m
        """
    ) == ["config.yaml:2: invalid YAML: did not find expected ',' or ']'"]


def test_a_list_or_mapping_as_a_key_is_invalid_yaml() -> None:
    assert problems("? [a, b]\n: 1\n") == [
        "config.yaml:1: invalid YAML: a key cannot be a list or a mapping"
    ]


@pytest.mark.parametrize("value", ["!!int abc", "!!float abc", "!!bool maybe", "!!timestamp abc"])
def test_a_value_that_does_not_fit_its_tag_is_invalid_yaml(value: str) -> None:
    assert problems(f"agents:\n  - id: {value}\n") == [
        "config.yaml: invalid YAML: a value does not fit its tag (such as !!int)"
    ]


def test_yaml_nested_too_deeply_is_invalid_yaml() -> None:
    assert problems("[" * 5000) == ["config.yaml:1: invalid YAML: exceeded maximum nesting depth"]


@pytest.mark.parametrize("text", ["- agent_1\n- agent_2\n", "just words\n", "42\n"])
def test_the_file_must_be_a_mapping(text: str) -> None:
    assert problems(text) == [
        "config.yaml:1: the config must be a mapping of keys, not a list or value"
    ]


@pytest.mark.parametrize(("warning", "critical"), [("1d", "1d"), ("1h", "1d")])
def test_warning_must_be_greater_than_critical(warning: str, critical: str) -> None:
    assert problems(
        f"""
        agents: [{{id: agent_1}}]
        thresholds:
          warning: {warning}
          critical: {critical}
        """
    ) == [
        f"config.yaml:2: thresholds: warning ({warning}) must be greater than critical ({critical})"
    ]


def test_a_default_warning_is_compared_with_a_configured_critical() -> None:
    assert problems(
        """
        agents: [{id: agent_1}]
        thresholds:
          critical: 2w
        """
    ) == ["config.yaml:2: thresholds: warning (1w) must be greater than critical (2w)"]


@pytest.mark.parametrize(("interval", "jitter"), [("1m", "1m"), ("1m", "90s")])
def test_jitter_must_be_shorter_than_interval(interval: str, jitter: str) -> None:
    assert problems(
        f"""
        agents: [{{id: agent_1}}]
        poll:
          interval: {interval}
          jitter: {jitter}
        """
    ) == [f"config.yaml:2: poll: jitter ({jitter}) must be shorter than interval ({interval})"]


@pytest.mark.parametrize(
    "url", ["ftp://api.elevenlabs.io", "api.elevenlabs.io", "https://", "https://a b.io"]
)
def test_base_url_must_be_an_http_url(url: str) -> None:
    assert problems(
        f"""
        elevenlabs:
          base_url: "{url}"
        agents: [{{id: agent_1}}]
        """
    ) == [
        f"config.yaml:2: elevenlabs.base_url: must be an http(s) URL such as "
        f"{DEFAULT_BASE_URL}, got '{url}'"
    ]


@pytest.mark.parametrize("name", ["1BAD", "ELEVENLABS-KEY", "$KEY", "A B"])
def test_api_key_env_must_be_an_environment_variable_name(name: str) -> None:
    assert problems(
        f"""
        elevenlabs:
          api_key_env: "{name}"
        agents: [{{id: agent_1}}]
        """
    ) == [f"config.yaml:2: elevenlabs.api_key_env: '{name}' is not an environment variable name"]


def test_api_key_env_and_api_key_file_cannot_both_be_set() -> None:
    assert problems(
        """
        agents: [{id: agent_1}]
        elevenlabs:
          api_key_env: ELEVENLABS_API_KEY
          api_key_file: /run/secrets/key
        """
    ) == ["config.yaml:2: elevenlabs: set api_key_env or api_key_file, not both"]


def test_an_agent_listed_twice_is_an_error() -> None:
    assert problems(
        """
        agents:
          - id: agent_1
          - id: agent_2
          - id: agent_1
        """
    ) == ["config.yaml:1: agents: agent id 'agent_1' is listed twice"]


@pytest.mark.parametrize("agent_id", ["agent/1", "..", ".", "...", "a?b", "a b", "agent#1", "é"])
def test_an_agent_id_must_be_one_url_path_segment(agent_id: str) -> None:
    assert problems(
        f"""
        agents:
          - id: "{agent_id}"
        """
    ) == [
        f"config.yaml:2: agents[0].id: '{agent_id}' is not an agent id "
        "(1 to 256 of letters, digits, _ - . ~, not only dots)"
    ]


def test_an_agent_needs_an_id() -> None:
    assert problems(
        """
        agents:
          - name: support-bot
        """
    ) == ["config.yaml:2: agents[0].id: required key is missing"]


@pytest.mark.parametrize("text", ["agents: []\n", "agents: []\ndiscover: false\n", ""])
def test_nothing_to_watch_is_an_error(text: str) -> None:
    (problem,) = problems(text)
    assert problem.endswith(": config: agents: no agents to watch and discover is false")
    assert problem.startswith("config.yaml")


def test_a_workspace_with_nothing_to_watch_is_an_error() -> None:
    assert problems(
        """
        workspaces:
          - name: prod
            api_key_env: KEY_PROD
        """
    ) == ["config.yaml:1: config: workspace 'prod': no agents to watch and discover is false"]


@pytest.mark.parametrize(
    ("single_form", "named"),
    [
        ("elevenlabs:\n  timeout: 5s\n", "elevenlabs"),
        ("agents: [{id: agent_1}]\n", "agents"),
        ("discover: true\nelevenlabs: {}\n", "discover, elevenlabs"),
    ],
)
def test_workspaces_cannot_be_combined_with_the_single_form(single_form: str, named: str) -> None:
    text = single_form + "workspaces:\n  - name: prod\n    discover: true\n"
    assert problems(text) == [
        f"config.yaml:1: config: workspaces: cannot be combined with {named}: "
        "use one form or the other"
    ]


def test_workspace_names_are_unique() -> None:
    assert problems(
        """
        workspaces:
          - name: prod
            discover: true
          - name: eu
            discover: true
          - name: prod
            agents: [{id: agent_1}]
        """
    ) == ["config.yaml:1: config: workspace name 'prod' is used twice"]


def test_an_empty_list_of_workspaces_is_an_error() -> None:
    assert problems("workspaces: []\n") == ["config.yaml:1: config: workspaces: is empty"]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("70000", "Input should be less than or equal to 65535"),
        ("-1", "Input should be greater than or equal to 0"),
        ("http", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_the_port_must_be_a_tcp_port(port: str, message: str) -> None:
    assert problems(
        f"""
        agents: [{{id: agent_1}}]
        server:
          port: {port}
        """
    ) == [f"config.yaml:3: server.port: {message}"]


@pytest.mark.parametrize("level", ["verbose", "INFO", "warn"])
def test_the_logging_level_is_one_of_four(level: str) -> None:
    assert problems(
        f"""
        agents: [{{id: agent_1}}]
        logging:
          level: {level}
        """
    ) == ["config.yaml:3: logging.level: Input should be 'debug', 'info', 'warning' or 'error'"]


def test_the_logging_format_is_json_or_console() -> None:
    assert problems(
        """
        agents: [{id: agent_1}]
        logging:
          format: text
        """
    ) == ["config.yaml:3: logging.format: Input should be 'json' or 'console'"]


def test_an_infinite_request_rate_is_refused() -> None:
    assert problems(
        """
        agents: [{id: agent_1}]
        elevenlabs:
          max_requests_per_second: .inf
        """
    ) == ["config.yaml:3: elevenlabs.max_requests_per_second: Input should be a finite number"]


def test_several_problems_give_one_line_each() -> None:
    assert problems(
        """
        agents:
          - id: agent/1
        server:
          port: 99999
        logging:
          level: loud
        colour: blue
        """
    ) == [
        "config.yaml:2: agents[0].id: 'agent/1' is not an agent id "
        "(1 to 256 of letters, digits, _ - . ~, not only dots)",
        "config.yaml:4: server.port: Input should be less than or equal to 65535",
        "config.yaml:6: logging.level: Input should be 'debug', 'info', 'warning' or 'error'",
        f"config.yaml:7: colour: {UNKNOWN}",
    ]


def test_load_config_names_the_file_in_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("agents: [{id: agent_1}]\nserver:\n  port: 70000\nextra: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}:3: server.port: Input should be less than or equal to 65535",
        f"{path}:4: extra: {UNKNOWN}",
    ]


def test_load_config_reads_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("agents: [{id: agent_1, name: support-bot}]\n")
    assert [(a.id, a.name) for a in load_config(path).agents] == [("agent_1", "support-bot")]


def test_a_missing_file_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: cannot read the config: No such file or directory"]


def test_a_directory_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == [f"{tmp_path}: cannot read the config: Is a directory"]


def test_a_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"agents: [{id: caf\xe9}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: cannot read the config: 'utf-8' codec can't decode")


# --- resolved_workspaces ---------------------------------------------------------------------


def test_the_single_form_is_the_workspace_default_with_default_settings() -> None:
    loaded = config(
        """
        agents:
          - id: agent_1
            name: support-bot
          - id: agent_2
        """
    )
    (only,) = loaded.resolved_workspaces()
    assert only == WorkspaceConfig(
        name="default",
        base_url="https://api.elevenlabs.io",
        api_key_env="ELEVENLABS_API_KEY",
        api_key_file=None,
        timeout=10.0,
        max_concurrency=8,
        max_requests_per_second=5.0,
        max_retries=3,
        agents=loaded.agents,
        discover=False,
    )
    assert [(a.id, a.name) for a in only.agents] == [("agent_1", "support-bot"), ("agent_2", "")]


def test_the_single_form_carries_its_elevenlabs_settings_into_default() -> None:
    only = workspace(
        """
        elevenlabs:
          base_url: https://api.eu.residency.elevenlabs.io
          api_key_file: /run/secrets/key
          timeout: 3s
          max_concurrency: 2
          max_requests_per_second: 0.5
          max_retries: 0
        discover: true
        """
    )
    assert (only.name, only.base_url, only.api_key_file, only.timeout) == (
        "default",
        "https://api.eu.residency.elevenlabs.io",
        Path("/run/secrets/key"),
        3.0,
    )
    assert (only.max_concurrency, only.max_requests_per_second, only.max_retries) == (2, 0.5, 0)
    assert (only.agents, only.discover) == ([], True)


def test_the_workspaces_form_is_kept_as_written() -> None:
    loaded = config(
        """
        workspaces:
          - name: prod
            agents: [{id: agent_1, name: support-bot}]
          - name: eu
            base_url: https://api.eu.residency.elevenlabs.io
            api_key_file: eu.key
            discover: true
        """
    )
    assert loaded.workspaces is not None
    assert loaded.resolved_workspaces() == loaded.workspaces
    prod, eu = loaded.resolved_workspaces()
    assert (prod.name, prod.base_url, [a.id for a in prod.agents], prod.discover) == (
        "prod",
        DEFAULT_BASE_URL,
        ["agent_1"],
        False,
    )
    assert (eu.name, eu.api_key_file, eu.agents, eu.discover) == (
        "eu",
        Path("eu.key"),
        [],
        True,
    )


# --- the API key -----------------------------------------------------------------------------


def test_the_key_comes_from_the_environment_stripped() -> None:
    only = workspace("agents: [{id: agent_1}]\n")
    assert read_api_key(only, {"ELEVENLABS_API_KEY": f"  {SECRET}\n"}) == SECRET


def test_the_key_comes_from_the_configured_variable() -> None:
    only = workspace("elevenlabs: {api_key_env: MY_KEY}\nagents: [{id: agent_1}]\n")
    assert read_api_key(only, {"MY_KEY": SECRET, "ELEVENLABS_API_KEY": "other"}) == SECRET


@pytest.mark.parametrize("environ", [{}, {"ELEVENLABS_API_KEY": ""}, {"ELEVENLABS_API_KEY": " \n"}])
def test_a_missing_or_empty_variable_names_the_variable_and_the_field(
    environ: dict[str, str],
) -> None:
    only = workspace("agents: [{id: agent_1}]\n")
    with pytest.raises(ConfigError) as caught:
        read_api_key(only, environ)
    assert caught.value.problems == [
        "elevenlabs.api_key_env: the environment variable ELEVENLABS_API_KEY "
        "that should hold the API key is not set or empty"
    ]


def test_a_workspace_missing_its_variable_is_named_in_the_error() -> None:
    prod = config(
        "workspaces:\n  - name: prod\n    api_key_env: KEY_PROD\n    discover: true\n"
    ).resolved_workspaces()[0]
    with pytest.raises(ConfigError) as caught:
        read_api_key(prod, {"ELEVENLABS_API_KEY": SECRET})
    assert caught.value.problems == [
        "workspace 'prod'.api_key_env: the environment variable KEY_PROD "
        "that should hold the API key is not set or empty"
    ]
    assert SECRET not in str(caught.value)


def test_the_key_comes_from_a_file_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{SECRET}\n")
    only = workspace(f"elevenlabs: {{api_key_file: {key_file}}}\nagents: [{{id: agent_1}}]\n")
    assert read_api_key(only, {}) == SECRET


def test_a_relative_key_file_is_read_from_the_base_directory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text(f"  {SECRET}  \n")
    only = workspace("elevenlabs: {api_key_file: secrets/key}\nagents: [{id: agent_1}]\n")
    assert read_api_key(only, {"ELEVENLABS_API_KEY": "not this one"}, base=tmp_path) == SECRET


def test_a_missing_key_file_is_an_error(tmp_path: Path) -> None:
    only = workspace("elevenlabs: {api_key_file: nowhere}\nagents: [{id: agent_1}]\n")
    with pytest.raises(ConfigError) as caught:
        read_api_key(only, {}, base=tmp_path)
    assert caught.value.problems == [
        f"elevenlabs.api_key_file: cannot read the API key from {tmp_path / 'nowhere'}: "
        "No such file or directory"
    ]


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_an_empty_key_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "key").write_bytes(content)
    only = workspace("elevenlabs: {api_key_file: key}\nagents: [{id: agent_1}]\n")
    with pytest.raises(ConfigError) as caught:
        read_api_key(only, {}, base=tmp_path)
    assert caught.value.problems == [f"elevenlabs.api_key_file: {tmp_path / 'key'} is empty"]


def test_a_key_file_that_is_not_text_is_an_error_that_does_not_quote_it(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(SECRET.encode() + b"\xff\xfe")
    only = workspace("elevenlabs: {api_key_file: key}\nagents: [{id: agent_1}]\n")
    with pytest.raises(ConfigError) as caught:
        read_api_key(only, {}, base=tmp_path)
    assert caught.value.problems == [
        f"elevenlabs.api_key_file: cannot read the API key from {tmp_path / 'key'}: not text"
    ]
    assert SECRET not in str(caught.value)


# --- whatever the file holds, the answer is a Config or a ConfigError ------------------------

CONFIG_KEYS = [
    "elevenlabs",
    "agents",
    "discover",
    "workspaces",
    "poll",
    "thresholds",
    "alerts",
    "server",
    "metrics",
    "logging",
    "base_url",
    "api_key_env",
    "api_key_file",
    "timeout",
    "max_concurrency",
    "max_requests_per_second",
    "max_retries",
    "id",
    "name",
    "interval",
    "jitter",
    "discovery_interval",
    "spread",
    "warning",
    "critical",
    "repeat_interval",
    "host",
    "port",
    "expose_relative",
    "level",
    "format",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["30s", "5m", "1h30m", "7d", "-1", "agent_1", "https://x.io", "info"])
)
keys = st.sampled_from(CONFIG_KEYS) | st.text(max_size=8) | st.integers() | st.none()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(CONFIG_KEYS), values, max_size=6) | values


def _outcome(text: str) -> Config | ConfigError:
    try:
        return parse_config(text, "config.yaml")
    except ConfigError as exc:
        return exc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_yaml_document_ends_in_a_config_or_a_config_error(document: Any) -> None:
    outcome = _outcome(yaml.safe_dump(document))
    assert isinstance(outcome, Config | ConfigError)
    if isinstance(outcome, ConfigError):
        assert outcome.problems
        assert all(p.startswith("config.yaml") for p in outcome.shown)
        if outcome.left_out:  # the one line that is not located: how many were left out
            assert outcome.problems[-1] == f"and {outcome.left_out} more problem" + (
                "s" if outcome.left_out > 1 else ""
            )


@settings(max_examples=200, deadline=None)
@given(st.text())
@example("? [a]\n: 1\n")
@example("x: !!int abc\n")
@example("x: !!timestamp abc\n")
@example("[" * 3000)
@example("a: &x [*x]\n")
@example("poll: {interval: .nan}\nagents: [{id: a}]\n")
def test_any_text_ends_in_a_config_or_a_config_error(text: str) -> None:
    assert isinstance(_outcome(text), Config | ConfigError)


def test_the_fast_yaml_parser_is_used() -> None:
    """libyaml (in PyYAML's wheels) parses 10,000 agents in a fraction of the memory."""
    import yaml

    assert yaml.__with_libyaml__


def test_shared_values_stay_shared_and_an_alias_bomb_stays_small() -> None:
    """The loaded data is copied (so the parser's memory can go): what an alias shares stays
    one object, or nine levels of ten aliases would be copied into a billion strings."""
    shared = parse_config("agents: [{id: &id a1, name: *id}]\n")
    assert shared.agents[0].id is shared.agents[0].name
    levels = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems("agents: [{id: a}]\n" + "\n".join(levels) + "\n")  # unknown keys
    assert problems("a: &x [*x]\n")  # a cycle stays a cycle (and is refused)
