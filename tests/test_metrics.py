"""The exposition: every contract metric, built from the store at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.evaluate import (
    AGENT_NOT_FOUND,
    TOKEN_MISSING,
    Kind,
    Observation,
    State,
    Thresholds,
)
from monitor.metrics import Metrics
from monitor.model import AgentKey, Health, LinkAnswer, PollFailure, Reason, Target
from monitor.revision import revision
from monitor.store import AgentRecord, Store

NOW = 1_800_000_000.0
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def families(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def agent(agent_id: str, name: str = "", workspace: str = "default") -> Target:
    return Target(AgentKey(workspace, agent_id), name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def metrics(store: Store, clock: Clock) -> Metrics:
    return Metrics(store, Health(), lambda: Thresholds(7 * DAY, DAY), clock, lambda: False)


def labels(agent_id: str, name: str = "", **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted({"workspace": "default", "agent_id": agent_id, "agent_name": name, **extra}.items())
    )


def test_every_contract_metric_with_its_labels(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a", "support"), agent("m"), agent("n"), agent("u")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + 3 * DAY), "f1"), AgentKey("default", "a"), NOW - 5
    )
    store.record(LinkAnswer(TOKEN_MISSING, None), AgentKey("default", "m"), NOW)
    store.record(PollFailure(Reason.NOT_FOUND, "HTTP 404", 404), AgentKey("default", "n"), NOW)
    found = families(metrics)
    assert found["elevenlabs_agent_link_expiry_timestamp_seconds"] == {
        labels("a", "support"): NOW + 3 * DAY
    }
    assert found["elevenlabs_agent_link_token_missing"][labels("m")] == 1
    assert found["elevenlabs_agent_link_token_missing"][labels("a", "support")] == 0
    states = found["elevenlabs_agent_link_state"]
    assert len(states) == 4 * 7
    current = {dict(k)["agent_id"]: dict(k)["state"] for k, v in states.items() if v == 1}
    assert current == {"a": "warning", "m": "missing", "n": "not_found", "u": "unknown"}
    assert found["elevenlabs_agent_link_poll_success"][labels("n")] == 0
    assert found["elevenlabs_agent_link_poll_success"][labels("m")] == 1
    assert found["elevenlabs_agent_link_last_success_timestamp_seconds"] == {
        labels("a", "support"): NOW - 5,
        labels("m"): NOW,
    }
    assert found["elevenlabs_agent_link_poll_errors_total"] == {labels("n", reason="not_found"): 1}
    assert found["elevenlabs_agent_link_token_rotations_total"][labels("a", "support")] == 0
    assert found["elevenlabs_link_monitor_agents"] == {(): 4}
    assert found["elevenlabs_link_monitor_config_last_reload_successful"] == {(): 1}
    ((build, one),) = found["elevenlabs_link_monitor_build_info"].items()
    assert one == 1
    assert dict(build) == {"version": "0.1.0", "revision": revision()}
    assert "elevenlabs_link_monitor_poll_duration_seconds_bucket" in found
    assert "elevenlabs_agent_link_expires_in_seconds" not in found
    assert not any(name.endswith("_created") for name in found)


def test_state_follows_the_clock_between_polls(
    store: Store, metrics: Metrics, clock: Clock
) -> None:
    store.sync([agent("a")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + DAY + 10), "f"), AgentKey("default", "a"), NOW
    )
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="warning")] == 1
    clock.now += 10
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="critical")] == 1
    clock.now += DAY
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="expired")] == 1


def test_an_agent_no_longer_watched_leaves_every_series(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a"), agent("gone")])
    store.record(PollFailure(Reason.TIMEOUT, "t"), AgentKey("default", "gone"), NOW)
    assert "gone" in metrics.render().decode()
    store.sync([agent("a")])
    assert '"gone"' not in metrics.render().decode()


def test_hostile_names_are_escaped_and_read_back_intact(store: Store, metrics: Metrics) -> None:
    name = 'evil"} 1\nfake_metric{x="1" \\ <img src=x onerror=alert(1)>'
    store.sync([agent("a", name)])
    found = families(metrics)
    assert labels("a", name) in found["elevenlabs_agent_link_poll_success"]
    assert "fake_metric" not in found


def test_unchanged_agents_are_not_rendered_again(
    store: Store, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.metrics as module

    store.sync([agent(f"a{i}") for i in range(10)])
    metrics.render()
    calls: list[str] = []
    original = module.render_agent

    def counting(record: AgentRecord, state: State) -> tuple[bytes, ...]:
        calls.append(record.key.agent_id)
        return original(record, state)

    monkeypatch.setattr(module, "render_agent", counting)
    first = metrics.render()
    store.record(LinkAnswer(AGENT_NOT_FOUND, None), AgentKey("default", "a3"), NOW)
    second = metrics.render()
    assert calls == ["a3"]
    assert first != second


def test_relative_expiry_is_optional(store: Store, clock: Clock) -> None:
    relative = Metrics(store, Health(), lambda: Thresholds(7 * DAY, DAY), clock, lambda: True)
    store.sync([agent("a")])
    store.record(LinkAnswer(Observation(Kind.LINK, NOW + 100), "f"), AgentKey("default", "a"), NOW)
    clock.now += 40
    assert families(relative)["elevenlabs_agent_link_expires_in_seconds"] == {labels("a"): 60}
