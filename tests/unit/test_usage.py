"""Usage and exposure (issue 19): the listing's last call time read leniently, carried by the
store to the two series (and their absence), and the archived agents' alerts and readiness.
In-process: no network, no sleeps."""

from __future__ import annotations

import math

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from monitor.alerts import AlertLog
from monitor.elevenlabs.answers import RowTally, listed_agent
from monitor.evaluate import Kind, Observation
from monitor.model import (
    LATEST_CALL,
    UNKNOWN,
    AgentKey,
    Health,
    LinkAnswer,
    Target,
    Usage,
    lenient_last_call,
)
from monitor.store import Store
from monitor.web.metrics import Metrics
from tests.settings import holder

NOW = 1_800_000_000.0
DAY = 86400.0
LAST_CALL = "elevenlabs_agent_last_call_timestamp_seconds"
ARCHIVED = "elevenlabs_agent_archived"
NEVER_CALLED = "elevenlabs_agent_never_called"

# --- the row: whatever last_call_time_unix_secs holds, the row is kept ------------------------

hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(hostile)
def test_a_hostile_last_call_never_costs_the_row(value: object) -> None:
    tally = RowTally()
    agent = listed_agent({"agent_id": "a1", "last_call_time_unix_secs": value}, 0, tally)
    assert agent is not None
    assert tally.skipped == 0
    read = agent.last_call_time_unix_secs
    if value is None:
        assert read is None  # never called
    elif read is UNKNOWN:
        plausible = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (not isinstance(value, float) or math.isfinite(value))
            and 0 <= value <= LATEST_CALL
        )
        assert not plausible
    else:
        assert isinstance(read, float)
        assert not isinstance(value, bool)
        assert read == value
        assert 0 <= read <= LATEST_CALL


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (1_700_000_000, 1_700_000_000.0),
        (1_700_000_000.5, 1_700_000_000.5),
        (0, 0.0),
        (LATEST_CALL, float(LATEST_CALL)),
        (None, None),
        (LATEST_CALL + 1, UNKNOWN),
        (-1, UNKNOWN),
        (float("nan"), UNKNOWN),
        (float("inf"), UNKNOWN),
        (True, UNKNOWN),
        ("1700000000", UNKNOWN),
        (10**400, UNKNOWN),
    ],
)
def test_last_call_values(value: object, read: object) -> None:
    assert lenient_last_call(value) == read


def test_an_absent_last_call_is_unknown_not_never() -> None:
    agent = listed_agent({"agent_id": "a1"}, 0, RowTally())
    assert agent is not None
    assert agent.last_call_time_unix_secs is UNKNOWN


# --- the store and the series -----------------------------------------------------------------


def series(metrics: Metrics) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics.render().body().decode()):
        for sample in family.samples:
            if "agent_id" in sample.labels:  # the per-agent series, not the monitor's own
                found.setdefault(sample.name, {})[sample.labels["agent_id"]] = sample.value
    return found


def watched(*ids: str) -> tuple[Store, Metrics]:
    store = Store()
    store.sync([Target(AgentKey("default", i)) for i in ids])
    return store, Metrics(store, Health(), holder(), lambda: NOW)


def test_the_series_say_what_the_listing_said_and_nothing_else() -> None:
    store, metrics = watched("called", "never", "unknown", "archived", "unlisted")
    store.set_usage(
        {
            AgentKey("default", "called"): Usage(NOW - 3 * DAY, archived=False),
            AgentKey("default", "never"): Usage(None, archived=False),
            AgentKey("default", "unknown"): Usage(UNKNOWN, archived=False),
            AgentKey("default", "archived"): Usage(NOW - 300 * DAY, archived=True),
        }
    )
    found = series(metrics)
    # Absent when never called or unknown: a rule reads absence as "no data", never as idle.
    assert found[LAST_CALL] == {"called": NOW - 3 * DAY, "archived": NOW - 300 * DAY}
    # Never called is said outright (an idle link), unknown is absent (no data): the rules
    # lower an alert's severity only for the first.
    assert found[NEVER_CALLED] == {"called": 0, "never": 1, "archived": 0}
    # Only for agents a listing has said something of.
    assert found[ARCHIVED] == {"called": 0, "never": 0, "unknown": 0, "archived": 1}


def test_usage_that_goes_away_takes_its_series_with_it() -> None:
    store, metrics = watched("a")
    store.set_usage({AgentKey("default", "a"): Usage(NOW - 60, archived=False)})
    assert series(metrics)[LAST_CALL] == {"a": NOW - 60}
    store.set_usage({})  # the listing failed: unknown again
    found = series(metrics)
    assert LAST_CALL not in found
    assert NEVER_CALLED not in found
    assert ARCHIVED not in found


def test_an_agent_added_later_starts_with_what_the_listing_said() -> None:
    store = Store()
    key = AgentKey("default", "late")
    store.set_usage({key: Usage(NOW - 10, archived=True)})
    store.sync([Target(key)])
    record = store.get(key)
    assert record is not None
    assert (record.last_call, record.archived) == (NOW - 10, True)


def test_a_poll_keeps_the_usage() -> None:
    store = Store()
    key = AgentKey("default", "a")
    store.sync([Target(key)])
    store.set_usage({key: Usage(NOW - 10, archived=False)})
    record = store.record(LinkAnswer(Observation(Kind.LINK, NOW + DAY), "d"), key, NOW)
    assert record is not None
    assert record.last_call == NOW - 10


def test_archived_agents_never_count_for_readiness_nor_the_poll_cycle() -> None:
    store = Store()
    live, gone = AgentKey("default", "live"), AgentKey("default", "gone")
    store.sync([Target(live), Target(gone)])
    store.set_usage({gone: Usage(None, archived=True)})
    assert store.live_keys() == [live]
    assert store.archived_keys() == [gone]
    assert not store.ready
    store.record(LinkAnswer(Observation(Kind.LINK, NOW + DAY), "d"), live, NOW)
    assert store.ready  # the archived one was never polled


# --- the alert log ----------------------------------------------------------------------------


def test_an_archived_agent_logs_its_open_door_and_never_a_link_alert() -> None:
    alerts = AlertLog(holder())
    store = Store()
    key = AgentKey("default", "door")
    store.sync([Target(key, "old-bot")])
    store.set_usage({key: Usage(None, archived=True)})
    store.record(LinkAnswer(Observation(Kind.LINK, NOW + 3600), "d"), key, NOW)
    record = store.get(key)
    assert record is not None
    with structlog.testing.capture_logs() as lines:
        assert alerts.exposure(record, NOW) == "archived_link_live"
        assert alerts.exposure(record, NOW + 60) is None  # said once
        assert alerts.exposure(record, NOW + 3600) == "archived_link_closed"  # expired
    assert [(line["event"], line["log_level"]) for line in lines] == [
        ("archived_link_live", "warning"),
        ("archived_link_closed", "info"),
    ]
    assert lines[0]["agent_id"] == "door"
    assert alerts.next_due(key) is None  # nothing repeats


def test_a_link_without_expiry_on_an_archived_agent_is_live() -> None:
    alerts = AlertLog(holder())
    store = Store()
    key = AgentKey("default", "forever")
    store.sync([Target(key)])
    store.set_usage({key: Usage(UNKNOWN, archived=True)})
    store.record(LinkAnswer(Observation(Kind.LINK, None), "d"), key, NOW)
    record = store.get(key)
    assert record is not None
    with structlog.testing.capture_logs():
        assert alerts.exposure(record, NOW) == "archived_link_live"


# --- the config -------------------------------------------------------------------------------


def test_the_sweep_and_the_active_window_are_keys_validated_like_the_others() -> None:
    from pydantic import ValidationError

    from monitor.config.schema import Config

    base = {"agents": [{"id": "a"}]}
    config = Config.model_validate(base)
    assert config.usage.active_window == 7 * DAY
    assert Config.model_validate({**base, "usage": {"active_window": "30d"}}).usage.active_window
    swept = Config.model_validate({"discover": {"archived": False}})
    assert swept.resolved_workspaces()[0].discovery is not None
    assert swept.resolved_workspaces()[0].discovery.archived is False  # type: ignore[union-attr]
    assert Config.model_validate({"discover": True}).resolved_workspaces()[0].discovery.archived  # type: ignore[union-attr]
    for bad in (
        {"usage": {"active_window": "10m"}},  # under an hour
        {"usage": {"active_window": "4000d"}},
        {"usage": {"window": "7d"}},  # a typo
        {"discover": {"archived": "sometimes"}},
    ):
        with pytest.raises(ValidationError):
            Config.model_validate({**base, **bad})
