"""Whether a workspace is failing as a whole, and why: pure, from the agents' records.

A revoked key or an unreachable region fails every poll of a workspace at once, and a key of
another workspace gets a 404 for every agent. Said once per workspace, that is one page; said
per agent, it is one per agent. The rules drop the per-agent poll-failure and not-found
alerts of a workspace failing as a whole, so the verdict must be sure of "whole": at least
WHOLE_SHARE of the workspace's polled agents failed their last poll, or answered 404.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.model import Reason
from monitor.store import AgentRecord

# 90%, not 100%: in a region outage a few polls get through now and then, and each would
# otherwise turn one workspace alert back into thousands of agent alerts.
WHOLE_SHARE = 0.9

# What a workspace-wide failure says to the on-call engineer, in the order a tie is read:
# a rejected key first (only a person fixes it), then an unreachable API.
FAILURE_CAUSES = ("unauthorized", "unreachable", "rate_limited", "api_error")
# Nearly every polled agent answered 404: the key belongs to another workspace (the API
# answers 404 for an agent the key cannot see), or the configured ids are wrong.
NOT_FOUND_CAUSE = "agents_not_found"
CAUSES = (*FAILURE_CAUSES, NOT_FOUND_CAUSE)
# A single agent's 404 is better said by its own alert, which names it.
MIN_AGENTS_NOT_FOUND = 2

_CAUSE = {
    Reason.UNAUTHORIZED: "unauthorized",
    Reason.TIMEOUT: "unreachable",
    Reason.CONNECTION: "unreachable",
    Reason.RATE_LIMITED: "rate_limited",
    Reason.SERVER_ERROR: "api_error",
    Reason.CLIENT_ERROR: "api_error",
    Reason.INVALID_RESPONSE: "api_error",
    # A 404 is an answer about one agent (state not_found), not a workspace failing.
    Reason.NOT_FOUND: None,
}

# The listing's failure reasons are Reason values too (as text, in Health.discovery_failing).
_LISTING_CAUSE = {reason.value: cause for reason, cause in _CAUSE.items()}


@dataclass(frozen=True, slots=True)
class WorkspaceHealth:
    polled: int = 0  # agents with a finished poll
    failing: int = 0  # of those, the ones whose last poll failed (a 404 is an answer)
    cause: str | None = None  # one of CAUSES while the workspace fails as a whole
    not_found: int = 0  # of the polled agents, the ones whose last answer was a 404


def cause_of(reason: Reason | None) -> str | None:
    """The workspace-level cause a poll failure counts towards; None for an answer."""
    return None if reason is None else _CAUSE[reason]


def workspace_health(
    records: Iterable[AgentRecord],
    workspaces: Iterable[str],
    listing_failing: dict[str, str] | None = None,
) -> dict[str, WorkspaceHealth]:
    """Each of `workspaces`' health. A workspace none of whose agents was polled yet fails
    as a whole when its listing does (a discovering workspace whose key is rejected has no
    agent to poll)."""
    polled: Counter[str] = Counter()
    not_found: Counter[str] = Counter()
    causes: dict[str, Counter[str]] = {}
    for record in records:
        # Archived agents are polled at the discovery interval, so their last polls may be
        # old; and they raise no poll-failure alert of their own for the verdict to hold back.
        if not record.polled or record.archived:
            continue
        workspace = record.key.workspace
        polled[workspace] += 1
        if not record.poll_success and record.last_error is Reason.NOT_FOUND:
            not_found[workspace] += 1
        cause = None if record.poll_success else cause_of(record.last_error)
        if cause is not None:
            causes.setdefault(workspace, Counter())[cause] += 1
    health: dict[str, WorkspaceHealth] = {}
    for workspace in workspaces:
        counted = causes.get(workspace, Counter())
        failing = sum(counted.values())
        cause = None
        whole = WHOLE_SHARE * polled[workspace]
        if polled[workspace] and failing >= whole:
            cause = max(FAILURE_CAUSES, key=lambda c: (counted[c], -FAILURE_CAUSES.index(c)))
        elif not_found[workspace] >= max(whole, MIN_AGENTS_NOT_FOUND):
            cause = NOT_FOUND_CAUSE
        elif not polled[workspace] and listing_failing and workspace in listing_failing:
            cause = _LISTING_CAUSE.get(listing_failing[workspace])
        health[workspace] = WorkspaceHealth(polled[workspace], failing, cause, not_found[workspace])
    return health
