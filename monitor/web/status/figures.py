"""The figures, shared by the page and the API: each agent's state and row, the order of the
rows, and the header's counts and the monitor's own health, computed from the store."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor import __version__
from monitor.config.schema import Config
from monitor.evaluate import ALERTING, STATES, Kind, State
from monitor.model import UNKNOWN, Health, Reason, iso, usage_word
from monitor.store import AgentRecord
from monitor.web.status.text import LABELS

SCHEMA_VERSION = 1
_ANSWERS: Mapping[Kind, str] = {
    Kind.LINK: "link",
    Kind.MISSING: "missing",
    Kind.NOT_FOUND: "not_found",
}
_RANK: Mapping[State, int] = {state: rank for rank, state in enumerate(STATES)}
# Refresh the page every few seconds, but not much faster than the data can change.
REFRESH_MIN = 2.0
REFRESH_MAX = 5.0

Row = dict[str, Any]
Evaluated = tuple[AgentRecord, State]


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity, and no calendar shows them: such a time is unknown."""
    return value if value is not None and math.isfinite(value) else None


def _whole(value: float | None) -> int | None:
    return math.floor(value) if value is not None and math.isfinite(value) else None


def _age(value: float | None, now: float) -> int | None:
    return None if value is None else _whole(max(0.0, now - value))


def is_idle(record: AgentRecord, now: float, window: float) -> bool:
    """Not called within the active window, or never; unknown usage is not idle (an alert
    is never weighed down for want of data)."""
    last_call = record.last_call
    if last_call is UNKNOWN:
        return False
    return last_call is None or now - last_call > window


def agent_row(record: AgentRecord, state: State, now: float) -> Row:
    """One agent as the API shows it: what is known, never a token."""
    observation = record.observation
    expires = _finite(observation.expires_at if observation is not None else None)
    last_success = _finite(record.last_success)
    last_call = record.last_call if isinstance(record.last_call, float) else None
    return {
        "workspace": record.key.workspace,
        "agent_id": record.key.agent_id,
        "agent_name": record.name,
        "labels": dict(record.labels),  # the owner labels, as on the alerts
        "state": state.value,
        "state_label": LABELS[state],
        "answer": _ANSWERS[observation.kind] if observation is not None else None,
        "expires_at": iso(expires) if expires is not None else None,
        "expires_at_unix": expires,
        "seconds_left": _whole(expires - now) if expires is not None else None,
        "polled": record.polled,
        "last_poll_ok": record.poll_success,
        "last_success_at": iso(last_success) if last_success is not None else None,
        "last_success_unix": last_success,
        "last_success_age_seconds": _age(last_success, now),
        "last_error": record.last_error.value if record.last_error is not None else None,
        "last_error_detail": record.last_error_detail or None,
        "usage": usage_word(record.last_call),
        "last_call_at": iso(last_call) if last_call is not None else None,
        "last_call_unix": last_call,
        "last_call_age_seconds": _age(last_call, now),
        "archived": record.archived,
    }


def sort_key(item: Evaluated) -> tuple[int, float, str, str, str]:
    """Soonest to die first: by state (most urgent first), then by expiry."""
    record, state = item
    observation = record.observation
    expires = _finite(observation.expires_at if observation is not None else None)
    return (
        _RANK[state],
        expires if expires is not None else math.inf,
        record.key.workspace,
        record.name.casefold(),
        record.key.agent_id,
    )


def last_call_key(item: Evaluated) -> tuple[int, float, tuple[int, float, str, str, str]]:
    """Least used first: never called, then the longest ago; unknown last; then as usual."""
    record, _ = item
    last_call = record.last_call
    if last_call is None:
        rank, when = 0, 0.0
    elif last_call is UNKNOWN:
        rank, when = 2, 0.0
    else:
        rank, when = 1, last_call
    return (rank, when, sort_key(item))


def archived_key(item: Evaluated) -> tuple[bool, tuple[int, float, str, str, str]]:
    """Archived agents first; then as usual."""
    return (not item[0].archived, sort_key(item))


def stale_after(config: Config) -> float:
    """How old the last full cycle may get before the page calls the knowledge stale."""
    return 2 * config.poll.interval + config.poll.jitter + 30


@dataclass
class _Reach:
    agents: int = 0
    polled: int = 0
    answered: int = 0
    errors: dict[Reason, int] = field(default_factory=dict)


def status_figures(
    items: Sequence[Evaluated], health: Health, config: Config, now: float, ready: bool
) -> dict[str, Any]:
    """The header: the monitor's own health and a count per state, in one pass over the
    agents (no row is built, nothing is sorted)."""
    by_state = Counter(state for _, state in items)
    # An archived agent raises no expiry alert: it is counted in its state, not as alerting.
    archived_alerting = sum(1 for r, state in items if r.archived and state in ALERTING)
    counts = {s.value: by_state[s] for s in STATES}
    workspaces = config.resolved_workspaces()
    reach: dict[str, _Reach] = {w.name: _Reach() for w in workspaces}
    discovering = frozenset(w.name for w in workspaces if w.discover)
    configured = len(reach)
    not_found = Reason.NOT_FOUND
    for record, _ in items:
        workspace = record.key.workspace
        tally = reach.get(workspace)
        if tally is None:
            tally = reach[workspace] = _Reach()
        tally.agents += 1
        if not record.polled:
            continue
        tally.polled += 1
        # A 404 for an agent is an answer (the API is up, the agent is gone); a timeout, a
        # 5xx, a 401 or a 429 is not.
        error = record.last_error
        if record.poll_success or error is not_found:
            tally.answered += 1
        if error is not None and not record.poll_success:
            tally.errors[error] = tally.errors.get(error, 0) + 1
    names = list(reach)
    names = names[:configured] + sorted(names[configured:])
    last_cycle = _finite(health.last_cycle)
    reload_at = _finite(health.config_reload_at)
    limit = stale_after(config)
    if last_cycle is not None:
        stale = now - last_cycle > limit
    else:  # no cycle has finished since start (the reload time is set at start, too)
        stale = reload_at is not None and now - reload_at > limit
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "generated_at_unix": now,
        "version": __version__,
        "agents": len(items),
        "ready": ready,
        "states": counts,
        "alerting": sum(counts[s.value] for s in ALERTING) - archived_alerting,
        "archived": sum(1 for r, _ in items if r.archived),
        "last_cycle_at": iso(last_cycle) if last_cycle is not None else None,
        "last_cycle_unix": last_cycle,
        "last_cycle_age_seconds": _age(last_cycle, now),
        "poll_interval_seconds": config.poll.interval,
        "stale_after_seconds": limit,
        "active_window_seconds": config.usage.active_window,
        "stale": stale,
        "config_reload": {
            "ok": health.config_reload_ok,
            "last_success_at": iso(reload_at) if reload_at is not None else None,
            "last_success_age_seconds": _age(reload_at, now),
        },
        "thresholds": {
            "warning_seconds": config.thresholds.warning,
            "critical_seconds": config.thresholds.critical,
        },
        "workspaces": [
            {
                **_reachability(name, reach[name], _listing(name, health, discovering, now)),
                "usage_listings_failing": {
                    kind: reason
                    for (workspace, kind), reason in sorted(health.usage_failing.items())
                    if workspace == name
                },
            }
            for name in names
        ],
    }


def _listing(
    name: str, health: Health, discovering: frozenset[str], now: float
) -> dict[str, Any] | None:
    """A discovering workspace's listing: `pending` before its first, else `ok` or `failing`
    (with the reason) as its last one went; the last good list is what is watched."""
    if name not in discovering:
        return None
    failing = health.discovery_failing.get(name)
    listed_at = _finite(health.discovery_last_success.get(name))
    if failing is not None:
        state = "failing"
    elif listed_at is not None or name in health.discovered:
        state = "ok"
    else:
        state = "pending"
    return {
        "state": state,
        "reason": failing,
        "agents": health.discovered.get(name),
        "last_success_at": iso(listed_at) if listed_at is not None else None,
        "last_success_unix": listed_at,
        "last_success_age_seconds": _age(listed_at, now),
    }


def _reachability(name: str, tally: _Reach, listing: dict[str, Any] | None) -> dict[str, Any]:
    if not tally.polled and listing is not None and listing["state"] == "failing":
        # Nothing to poll because the listing fails: that is no "not polled yet".
        reachability = "listing_failed"
    elif not tally.polled:
        reachability = "pending"
    elif tally.answered == tally.polled:
        reachability = "ok"
    elif not tally.answered:
        reachability = "unreachable"
    else:
        reachability = "degraded"
    return {
        "name": name,
        "agents": tally.agents,
        "polled": tally.polled,
        "answered": tally.answered,
        "reachability": reachability,
        "last_errors": {str(k): v for k, v in sorted(tally.errors.items())},
        "listing": listing,
    }


def refresh_seconds(config: Config) -> float:
    return min(REFRESH_MAX, max(REFRESH_MIN, config.poll.interval))
