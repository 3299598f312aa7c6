"""One rule for when a per-agent value is stale: a new record, a new state, new settings."""

from __future__ import annotations

from monitor.config.holder import Settings
from monitor.evaluate import Kind, Observation, State, Thresholds
from monitor.model import AgentKey, LinkAnswer, Target
from monitor.peragent import Changes, PerAgent
from monitor.store import AgentRecord, Store
from tests.settings import config_with

NOW = 1_800_000_000.0
DAY = 86400.0
THRESHOLDS = Settings.of(config_with(warning=7 * DAY, critical=DAY))
A, B = AgentKey("default", "a"), AgentKey("default", "b")


def builds() -> tuple[PerAgent[str], list[tuple[str, State]]]:
    built: list[tuple[str, State]] = []

    def build(record: AgentRecord, state: State, _: Thresholds) -> str:
        built.append((record.key.agent_id, state))
        return f"{record.key.agent_id}:{state.value}"

    return PerAgent(build), built


def store_with(expires_in: float) -> Store:
    store = Store()
    store.sync([Target(A), Target(B)])
    for key in (A, B):
        store.record(LinkAnswer(Observation(Kind.LINK, NOW + expires_in), "f"), key, NOW)
    return store


def test_values_are_built_once_and_kept_while_nothing_changes() -> None:
    kept, built = builds()
    store = store_with(30 * DAY)
    assert kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert not kept.refresh(store.snapshot(), NOW + 60, THRESHOLDS)
    assert built == [("a", State.OK), ("b", State.OK)]
    assert [k.value for k in kept.kept()] == ["a:ok", "b:ok"]


def test_a_new_record_rebuilds_only_its_agent() -> None:
    kept, built = builds()
    store = store_with(30 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    store.record(LinkAnswer(Observation(Kind.LINK, NOW + 31 * DAY), "g"), B, NOW + 1)
    # Its position, for a consumer that keeps the values elsewhere (/metrics' runs).
    assert kept.refresh(store.snapshot(), NOW + 1, THRESHOLDS) == Changes([1], same_agents=True)
    assert built[2:] == [("b", State.OK)]


def test_the_clock_crossing_a_threshold_rebuilds_on_time() -> None:
    kept, _ = builds()
    store = store_with(8 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert not kept.refresh(store.snapshot(), NOW + DAY - 1, THRESHOLDS)
    assert kept.refresh(store.snapshot(), NOW + DAY, THRESHOLDS)
    assert [k.state for k in kept.kept()] == [State.WARNING, State.WARNING]


def test_new_thresholds_re_evaluate_every_agent() -> None:
    kept, _ = builds()
    store = store_with(3 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert kept.refresh(store.snapshot(), NOW, Settings.of(config_with(warning=2 * DAY)))
    assert [k.value for k in kept.kept()] == ["a:ok", "b:ok"]


def test_new_settings_of_the_same_values_still_rebuild() -> None:
    """Settings are told apart by identity (a reload swaps them whole), never compared."""
    kept, built = builds()
    store = store_with(30 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert kept.refresh(store.snapshot(), NOW, Settings.of(THRESHOLDS.config))
    assert len(built) == 4


def test_an_agent_that_leaves_the_store_leaves_the_cache() -> None:
    kept, _ = builds()
    store = store_with(30 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    store.sync([Target(A)])
    assert kept.refresh(store.snapshot(), NOW, THRESHOLDS) == Changes([], same_agents=False)
    assert [k.record.key for k in kept.kept()] == [A]


def test_the_same_agents_in_another_order_are_not_the_same_agents() -> None:
    """A consumer that keeps values by position must lay them out again."""
    kept, _ = builds()
    store = store_with(30 * DAY)
    kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert kept.refresh(store.snapshot()[::-1], NOW, THRESHOLDS) == Changes([], False)
    assert [k.record.key for k in kept.kept()] == [B, A]


def test_a_time_no_clock_reaches_is_kept_for_good() -> None:
    kept, built = builds()
    store = Store()
    store.sync([Target(A)])
    store.record(LinkAnswer(Observation(Kind.LINK, float("nan")), "f"), A, NOW)
    assert kept.refresh(store.snapshot(), NOW, THRESHOLDS)
    assert not kept.refresh(store.snapshot(), NOW + DAY, THRESHOLDS)
    assert len(built) == 1
