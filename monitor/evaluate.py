"""Pure evaluation: what the API last said, the time now and the thresholds give a state."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class State(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    EXPIRED = "expired"
    MISSING = "missing"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


# Most urgent first: the order of the status page and of `check`'s exit status.
STATES: tuple[State, ...] = (
    State.EXPIRED,
    State.MISSING,
    State.NOT_FOUND,
    State.CRITICAL,
    State.WARNING,
    State.UNKNOWN,
    State.OK,
)
# The states a link with an expiry goes through as time passes.
_BY_TIME = (State.OK, State.WARNING, State.CRITICAL, State.EXPIRED)
ALERTING: frozenset[State] = frozenset(
    {State.WARNING, State.CRITICAL, State.EXPIRED, State.MISSING, State.NOT_FOUND}
)


class Kind(enum.Enum):
    LINK = "link"  # a token, with or without an expiry
    MISSING = "missing"  # `token: null`
    NOT_FOUND = "not_found"  # HTTP 404 for the agent


@dataclass(frozen=True, slots=True)
class Observation:
    """The last definitive answer about an agent's link (not the token itself)."""

    kind: Kind
    expires_at: float | None = None


LINK_WITHOUT_EXPIRY = Observation(Kind.LINK)
TOKEN_MISSING = Observation(Kind.MISSING)
AGENT_NOT_FOUND = Observation(Kind.NOT_FOUND)


@dataclass(frozen=True, slots=True)
class Thresholds:
    warning: float
    critical: float


def evaluate(observation: Observation | None, now: float, thresholds: Thresholds) -> State:
    """The state of a link at `now`.

    Boundaries are inclusive: exactly `warning` seconds left is `warning`, and a
    token is `expired` at its expiry instant.
    """
    if observation is None:
        return State.UNKNOWN
    if observation.kind is Kind.MISSING:
        return State.MISSING
    if observation.kind is Kind.NOT_FOUND:
        return State.NOT_FOUND
    if observation.expires_at is None:
        return State.OK
    left = observation.expires_at - now
    if left <= 0:
        return State.EXPIRED
    if left <= thresholds.critical:
        return State.CRITICAL
    if left <= thresholds.warning:
        return State.WARNING
    return State.OK


def next_change(
    observation: Observation | None, now: float, thresholds: Thresholds
) -> float | None:
    """The first instant after `now` at which `evaluate` gives another state, if the clock
    alone can change it (only a known expiry can)."""
    if observation is None or observation.kind is not Kind.LINK or observation.expires_at is None:
        return None
    if not math.isfinite(observation.expires_at) or not math.isfinite(now):
        return None  # no instant to step to: the search below would never end
    state = evaluate(observation, now, thresholds)
    ahead = _BY_TIME[_BY_TIME.index(state) + 1 :]
    if not ahead:
        return None
    crossing = {
        State.WARNING: observation.expires_at - thresholds.warning,
        State.CRITICAL: observation.expires_at - thresholds.critical,
        State.EXPIRED: observation.expires_at,
    }[ahead[0]]
    instant = max(crossing, math.nextafter(now, math.inf))
    # `expires_at - warning` is rounded: step to the first float where the state has moved.
    while evaluate(observation, instant, thresholds) is state:
        instant = math.nextafter(instant, math.inf)
    return instant


def worst(states: list[State]) -> State | None:
    """The most urgent of several states."""
    return min(states, key=STATES.index, default=None)
