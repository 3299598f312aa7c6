"""What the monitor knows: one immutable record per (workspace, agent_id), swapped whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.evaluate import Observation
from monitor.model import (
    UNKNOWN,
    AgentKey,
    Labels,
    LastCall,
    LinkAnswer,
    PollFailure,
    PollOutcome,
    Reason,
    Target,
    Usage,
)

_NO_ERRORS: Mapping[Reason, int] = dict.fromkeys(Reason, 0)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    key: AgentKey
    name: str = ""
    observation: Observation | None = None  # the last definitive answer
    fingerprint: str | None = None
    polled: bool = False  # a first poll has finished, successful or not
    poll_success: bool = False
    last_success: float | None = None
    last_error: Reason | None = None
    last_error_detail: str = ""
    errors: Mapping[Reason, int] = field(default_factory=lambda: _NO_ERRORS)
    rotations: int = 0
    labels: Labels = ()  # the target's owner labels: a change is a new record, re-rendered
    # From the listings (monitor/runtime/discovery.py): the last call (a time, None for never,
    # UNKNOWN), and whether the agent is archived (None: no listing has said yet).
    last_call: LastCall = UNKNOWN
    archived: bool | None = None

    def with_usage(self, usage: Usage | None) -> AgentRecord:
        """The record as the listings last said (`None`: they said nothing of it); itself
        when nothing changes, so that no output renders it again."""
        last_call: LastCall = UNKNOWN
        archived: bool | None = None
        if usage is not None:
            last_call, archived = usage.last_call, usage.archived
        if (last_call, archived) == (self.last_call, self.archived):
            return self
        return dataclasses.replace(self, last_call=last_call, archived=archived)

    def after(self, outcome: PollOutcome, now: float) -> AgentRecord:
        """The record once `outcome` is known; failures keep what earlier answers said."""
        if isinstance(outcome, LinkAnswer):
            rotated = (
                self.fingerprint is not None
                and outcome.fingerprint is not None
                and outcome.fingerprint != self.fingerprint
            )
            return dataclasses.replace(
                self,
                observation=outcome.observation,
                # Keep the old digest through a `token: null` spell so a new token is counted.
                fingerprint=outcome.fingerprint or self.fingerprint,
                polled=True,
                poll_success=True,
                last_success=now,
                last_error=None,
                last_error_detail="",
                rotations=self.rotations + rotated,
            )
        assert isinstance(outcome, PollFailure)  # noqa: S101 - narrowing for mypy
        errors = dict(self.errors)
        errors[outcome.reason] += 1
        return dataclasses.replace(
            self,
            observation=outcome.observation or self.observation,
            polled=True,
            poll_success=False,
            last_error=outcome.reason,
            last_error_detail=outcome.detail,
            errors=errors,
        )


class Store:
    """The records of every watched agent.

    Readers (the metrics collector, the status page) take `snapshot()`; each record is
    immutable and replaced whole, so a reader never sees half an update.
    """

    def __init__(self) -> None:
        self._records: dict[AgentKey, AgentRecord] = {}
        # What the listings last said, kept for agents not yet (or no longer) watched too:
        # an agent added by the next sync starts with it.
        self._usage: Mapping[AgentKey, Usage] = {}

    def sync(self, targets: Iterable[Target]) -> tuple[list[AgentKey], list[AgentKey]]:
        """Watch exactly `targets`: keep what is known of the others; return (added, removed)."""
        wanted = {t.key: t for t in targets}
        removed = [k for k in self._records if k not in wanted]
        added = [k for k in wanted if k not in self._records]
        records: dict[AgentKey, AgentRecord] = {}
        for key, target in wanted.items():
            old = self._records.get(key)
            if old is None:
                new = AgentRecord(key, target.name, labels=target.labels)
                records[key] = new.with_usage(self._usage.get(key))
            elif old.name != target.name or old.labels != target.labels:
                records[key] = dataclasses.replace(old, name=target.name, labels=target.labels)
            else:
                records[key] = old
        self._records = records
        return added, removed

    def record(self, outcome: PollOutcome, key: AgentKey, now: float) -> AgentRecord | None:
        """Apply a poll's outcome; None when the agent stopped being watched meanwhile."""
        old = self._records.get(key)
        if old is None:
            return None
        new = old.after(outcome, now)
        self._records[key] = new
        return new

    def set_usage(self, usage: Mapping[AgentKey, Usage]) -> list[AgentKey]:
        """Make `usage` what the listings say of every agent (one absent: unknown); return
        the agents whose usage changed."""
        self._usage = usage
        changed = []
        for key, old in self._records.items():
            new = old.with_usage(usage.get(key))
            if new is not old:
                self._records[key] = new
                changed.append(key)
        return changed

    def live_keys(self) -> list[AgentKey]:
        """The agents a poll cycle polls: all but the archived (swept at the discovery
        interval: see Runtime.discover)."""
        return [k for k, r in self._records.items() if not r.archived]

    def archived_keys(self) -> list[AgentKey]:
        return [k for k, r in self._records.items() if r.archived]

    def get(self, key: AgentKey) -> AgentRecord | None:
        return self._records.get(key)

    def snapshot(self) -> list[AgentRecord]:
        return list(self._records.values())

    def agent_keys(self) -> list[AgentKey]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def ready(self) -> bool:
        """Every watched agent has been polled once; archived agents never count (nobody
        uses them, and they are polled only at the discovery interval)."""
        return all(r.polled for r in self._records.values() if not r.archived)
