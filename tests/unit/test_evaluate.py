"""Evaluation is pure: the last answer, the time and the thresholds decide the state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.evaluate import (
    AGENT_NOT_FOUND,
    LINK_WITHOUT_EXPIRY,
    STATES,
    TOKEN_MISSING,
    Kind,
    Observation,
    State,
    Thresholds,
    evaluate,
    next_change,
    worst,
)

DAY = 86400.0
T = Thresholds(warning=7 * DAY, critical=DAY)
NOW = 1_800_000_000.0


def link(expires_at: float | None) -> Observation:
    return Observation(Kind.LINK, expires_at)


def test_no_answer_yet_is_unknown() -> None:
    assert evaluate(None, NOW, T) is State.UNKNOWN


def test_answers_that_are_not_links() -> None:
    assert evaluate(TOKEN_MISSING, NOW, T) is State.MISSING
    assert evaluate(AGENT_NOT_FOUND, NOW, T) is State.NOT_FOUND


def test_a_token_without_expiry_is_ok() -> None:
    assert evaluate(LINK_WITHOUT_EXPIRY, NOW, T) is State.OK


@pytest.mark.parametrize(
    ("seconds_left", "state"),
    [
        (7 * DAY + 1, State.OK),
        (7 * DAY, State.WARNING),  # exactly at the warning threshold: warning
        (DAY + 1, State.WARNING),
        (DAY, State.CRITICAL),  # exactly at the critical threshold: critical
        (1, State.CRITICAL),
        (0, State.EXPIRED),  # the expiry instant itself: expired
        (-1, State.EXPIRED),
        (-365 * DAY, State.EXPIRED),
    ],
)
def test_boundaries_are_inclusive(seconds_left: float, state: State) -> None:
    assert evaluate(link(NOW + seconds_left), NOW, T) is state


def test_next_change_walks_through_every_crossing() -> None:
    expires = NOW + 10 * DAY
    obs = link(expires)
    assert next_change(obs, NOW, T) == expires - 7 * DAY
    assert next_change(obs, expires - 7 * DAY, T) == expires - DAY
    assert next_change(obs, expires - DAY, T) == expires
    assert next_change(obs, expires, T) is None


@pytest.mark.parametrize("obs", [None, TOKEN_MISSING, AGENT_NOT_FOUND, LINK_WITHOUT_EXPIRY])
def test_only_a_known_expiry_changes_with_the_clock(obs: Observation | None) -> None:
    assert next_change(obs, NOW, T) is None


def test_worst_orders_by_urgency() -> None:
    assert worst([State.OK, State.WARNING, State.UNKNOWN]) is State.WARNING
    assert worst([State.CRITICAL, State.EXPIRED]) is State.EXPIRED
    assert worst([]) is None
    assert next(iter(STATES)) is State.EXPIRED
    assert list(STATES)[-1] is State.OK


thresholds = (
    st.tuples(st.floats(min_value=1, max_value=1e8), st.floats(min_value=1, max_value=1e8))
    .filter(lambda t: t[0] > t[1])
    .map(lambda t: Thresholds(warning=t[0], critical=t[1]))
)
instants = st.floats(min_value=0, max_value=4e9)


@given(expires=instants, now=instants, th=thresholds)
def test_state_follows_seconds_left(expires: float, now: float, th: Thresholds) -> None:
    state = evaluate(link(expires), now, th)
    left = expires - now
    if left <= 0:
        assert state is State.EXPIRED
    elif left <= th.critical:
        assert state is State.CRITICAL
    elif left <= th.warning:
        assert state is State.WARNING
    else:
        assert state is State.OK


@given(expires=instants, now=instants, later=st.floats(min_value=0, max_value=1e9), th=thresholds)
def test_states_only_get_worse_as_time_passes(
    expires: float, now: float, later: float, th: Thresholds
) -> None:
    order = [State.OK, State.WARNING, State.CRITICAL, State.EXPIRED]
    before = evaluate(link(expires), now, th)
    after = evaluate(link(expires), now + later, th)
    assert order.index(after) >= order.index(before)


@given(expires=instants, now=instants, th=thresholds)
def test_next_change_is_exactly_when_the_state_changes(
    expires: float, now: float, th: Thresholds
) -> None:
    obs = link(expires)
    change = next_change(obs, now, th)
    state = evaluate(obs, now, th)
    if change is None:
        assert state is State.EXPIRED
        return
    assert change > now
    assert evaluate(obs, change, th) is not state
    # Just before the change, nothing has changed yet.
    just_before = max(now, change - min(1e-3, (change - now) / 2))
    if just_before < change:
        assert evaluate(obs, just_before, th) is state
