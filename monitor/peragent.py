"""A value derived from each agent's record and state, kept until either changes.

Records are immutable and replaced whole on every poll (and on a rename or new owner labels),
so identity tells a new record; a state changes only with a new record, new settings (each
agent's thresholds come from them), or when the clock reaches the instant `next_change`
names. /metrics (an agent's rendered series) and the status page (its search
text) keep their per-agent values in one of these, so the rule of when a value is stale is
written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from monitor.evaluate import State, Thresholds, evaluate, next_change
from monitor.model import AgentKey
from monitor.store import AgentRecord

_V = TypeVar("_V")


class ThresholdsSource(Protocol):
    """Where each agent's thresholds come from: `Settings` (monitor/config/holder.py)."""

    def thresholds_for(self, key: AgentKey) -> Thresholds: ...


@dataclass(frozen=True, slots=True)
class Changes:
    """What one refresh did: the positions (in the records' order) whose value it rebuilt."""

    rebuilt: list[int]
    same_agents: bool  # the same agents, in the same order, as at the refresh before

    def __bool__(self) -> bool:
        return bool(self.rebuilt) or not self.same_agents


@dataclass(frozen=True, slots=True)
class Kept(Generic[_V]):
    record: AgentRecord
    state: State
    until: float  # the state holds while the clock is before this instant
    value: _V


class PerAgent(Generic[_V]):
    """`build(record, state, thresholds)` for every agent, rebuilt only when its record or
    state changes, or the settings do."""

    def __init__(self, build: Callable[[AgentRecord, State, Thresholds], _V]) -> None:
        self._build = build
        self._kept: dict[AgentKey, Kept[_V]] = {}
        self._source: ThresholdsSource | None = None

    def refresh(
        self, records: Iterable[AgentRecord], now: float, settings: ThresholdsSource
    ) -> Changes:
        """Bring every agent up to date at `now`, each with its own thresholds from
        `settings`; what was rebuilt (false when nothing was and no agent came or left).

        The agents kept are exactly `records`, in their order: one that left the store
        leaves the cache with it. New settings (another object: a reload swaps them whole)
        rebuild every agent, whatever changed in them.
        """
        kept = self._kept
        if settings is not self._source:
            kept = {}  # any agent's thresholds, and so its state deadline, may have moved
            self._source = settings
        rebuilt: list[int] = []
        fresh: dict[AgentKey, Kept[_V]] = {}
        for position, record in enumerate(records):
            entry = kept.get(record.key)
            if entry is None or entry.record is not record or now >= entry.until:
                thresholds = settings.thresholds_for(record.key)
                state = evaluate(record.observation, now, thresholds)
                if entry is None or entry.record is not record or entry.state is not state:
                    value = self._build(record, state, thresholds)
                    rebuilt.append(position)
                else:
                    value = entry.value
                until = next_change(record.observation, now, thresholds)
                entry = Kept(record, state, math.inf if until is None else until, value)
            fresh[record.key] = entry
        # Compared key by key (identity first): the order is the exposition's.
        same = len(fresh) == len(self._kept) and list(fresh) == list(self._kept)
        self._kept = fresh
        return Changes(rebuilt, same)

    def kept(self) -> list[Kept[_V]]:
        """Every agent's entry, as of the last refresh."""
        return list(self._kept.values())
