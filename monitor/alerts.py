"""The alert log: `link_alert` on entering a bad state, repeated while it lasts,
`link_recovered` on the way back to `ok`, and `poll_failed`; for an archived agent, only
`archived_link_live` and `archived_link_closed` (nobody should renew its link)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from monitor.config.holder import ConfigHolder
from monitor.evaluate import ALERTING, Kind, State
from monitor.fleet import WorkspaceHealth
from monitor.model import AgentKey, PollFailure, iso
from monitor.store import AgentRecord

log = structlog.get_logger("monitor.alerts")


@dataclass(frozen=True, slots=True)
class AlertMemory:
    state: State  # the last evaluated state
    alerted_at: float | None = None  # when the current bad state was last logged


class AlertLog:
    """Decides which alert lines a new evaluation calls for, and writes them."""

    def __init__(self, settings: ConfigHolder) -> None:
        self._settings = settings
        self._memory: dict[AgentKey, AlertMemory] = {}
        # Archived agents whose link was last seen live (a token that has not expired).
        self._exposed: set[AgentKey] = set()

    def forget(self, keys: list[AgentKey]) -> None:
        for key in keys:
            self._memory.pop(key, None)
            self._exposed.discard(key)

    def exposure(self, record: AgentRecord, now: float) -> str | None:
        """An archived agent: `archived_link_live` when its link has a token that has not
        expired, `archived_link_closed` when it no longer does; never an expiry alert (what
        was alerted before it was archived is forgotten, without a recovery line)."""
        self._memory.pop(record.key, None)
        observation = record.observation
        live = (
            observation is not None
            and observation.kind is Kind.LINK
            and (observation.expires_at is None or observation.expires_at > now)
        )
        was = record.key in self._exposed
        if live == was:
            return None
        fields = {**_agent_fields(record), **_expiry_fields(record, now)}
        if live:
            self._exposed.add(record.key)
            log.warning("archived_link_live", **fields)
            return "archived_link_live"
        self._exposed.discard(record.key)
        log.info("archived_link_closed", **fields)
        return "archived_link_closed"

    def next_due(self, key: AgentKey) -> float | None:
        """When an unresolved alert must be logged again."""
        memory = self._memory.get(key)
        if memory is None or memory.alerted_at is None:
            return None
        return memory.alerted_at + self._settings.current.repeat_interval

    def observe(self, record: AgentRecord, state: State, now: float) -> str | None:
        """Log what entering or staying in `state` calls for; return the event logged."""
        self._exposed.discard(record.key)  # not (or no longer) archived
        memory = self._memory.get(record.key, AlertMemory(State.UNKNOWN))
        event = None
        if state in ALERTING:
            repeat_due = (
                memory.alerted_at is not None
                and now - memory.alerted_at >= self._settings.current.repeat_interval
            )
            if state != memory.state or repeat_due:
                self._alert(record, state, memory.state, now, repeated=state == memory.state)
                memory = AlertMemory(state, now)
                event = "link_alert"
            else:
                memory = AlertMemory(state, memory.alerted_at)
        else:
            if state is State.OK and memory.state in ALERTING:
                log.info(
                    "link_recovered",
                    **_agent_fields(record),
                    state=state.value,
                    previous_state=memory.state.value,
                    **_expiry_fields(record, now),
                )
                event = "link_recovered"
            # Unknown comes only before a first answer: keep whatever was alerted.
            if state is State.OK or memory.state is State.UNKNOWN:
                memory = AlertMemory(state)
        self._memory[record.key] = memory
        return event

    def _alert(
        self, record: AgentRecord, state: State, previous: State, now: float, *, repeated: bool
    ) -> None:
        fields = {
            **_agent_fields(record),
            "state": state.value,
            "previous_state": previous.value,
            **_expiry_fields(record, now),
        }
        # The agent's own threshold, which may not be the config's default: what "soon" meant.
        thresholds = self._settings.current.thresholds_for(record.key)
        if state is State.WARNING:
            fields["threshold_seconds"] = thresholds.warning
        elif state is State.CRITICAL:
            fields["threshold_seconds"] = thresholds.critical
        if repeated:
            fields["repeated"] = True
        if state is State.WARNING:
            log.warning("link_alert", **fields)
        else:
            log.error("link_alert", **fields)


def log_poll_failed(record: AgentRecord, failure: PollFailure) -> None:
    log.warning(
        "poll_failed",
        **_agent_fields(record),
        reason=failure.reason.value,
        detail=failure.detail,
        **({"status": failure.status} if failure.status is not None else {}),
    )


def _agent_fields(record: AgentRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "workspace": record.key.workspace,
        "agent_id": record.key.agent_id,
        "agent_name": record.name,
    }
    if record.labels:
        # The owner labels, so that a log-based alert can be routed as the Prometheus ones are.
        fields["labels"] = dict(record.labels)
    return fields


def _expiry_fields(record: AgentRecord, now: float) -> dict[str, Any]:
    observation = record.observation
    if observation is None or observation.expires_at is None:
        return {}
    return {
        "expires_at": iso(observation.expires_at),
        "seconds_left": round(observation.expires_at - now),
    }


class WorkspaceAlerts:
    """`workspace_failing` when a workspace starts failing as a whole (or its cause changes),
    `workspace_recovered` when it stops: one line per workspace where its agents' `poll_failed`
    lines number in thousands, for a log-based alert to page on once."""

    def __init__(self, settings: ConfigHolder) -> None:
        self._settings = settings
        self._causes: dict[str, str] = {}

    def update(self, verdicts: dict[str, WorkspaceHealth]) -> None:
        causes: dict[str, str] = {}
        for workspace, verdict in sorted(verdicts.items()):
            before = self._causes.get(workspace)
            fields: dict[str, Any] = {"workspace": workspace}
            labels = self._settings.current.workspace_labels.get(workspace)
            if labels:
                fields["labels"] = dict(labels)
            counts = {
                "agents_failing": verdict.failing,
                "agents_not_found": verdict.not_found,
                "agents_polled": verdict.polled,
            }
            if verdict.cause is not None:
                causes[workspace] = verdict.cause
                if verdict.cause != before:
                    log.error("workspace_failing", **fields, reason=verdict.cause, **counts)
            elif before is not None:
                log.info("workspace_recovered", **fields, reason=before, **counts)
        # A workspace that left the config takes its memory with it, and says nothing.
        self._causes = causes
