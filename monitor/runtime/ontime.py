"""On-time evaluation: evaluate an agent, log what its state calls for, and queue it again
for the instant its state changes by the clock alone or its alert is due to repeat, so a
threshold is crossed on time even while the API is down."""

from __future__ import annotations

from collections.abc import Callable

from monitor.alerts import AlertLog
from monitor.config.holder import ConfigHolder
from monitor.evaluate import evaluate, next_change
from monitor.model import AgentKey
from monitor.runtime.duequeue import DueQueue
from monitor.store import Store


class OnTime:
    def __init__(
        self,
        store: Store,
        alerts: AlertLog,
        settings: ConfigHolder,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._alerts = alerts
        self._settings = settings
        self._clock = clock
        self.queue: DueQueue[AgentKey] = DueQueue(self._evaluate_due, clock)

    def evaluate(self, key: AgentKey) -> None:
        """Evaluate one agent now, log what it calls for, and queue its next due time."""
        record = self._store.get(key)
        if record is None:
            self.queue.drop(key)
            return
        now = self._clock()
        thresholds = self._settings.current.thresholds_for(key)  # the agent's own
        if record.archived:
            # No expiry alert (nobody should renew its link): whether its door is open. Its
            # next change below includes the expiry, when a live link closes by itself.
            self._alerts.exposure(record, now)
        else:
            self._alerts.observe(record, evaluate(record.observation, now, thresholds), now)
        times = [
            t
            for t in (
                next_change(record.observation, now, thresholds),
                self._alerts.next_due(key),
            )
            if t is not None
        ]
        self.queue.set(key, min(times, default=None))

    def evaluate_all(self) -> None:
        """Every agent again (after a reload: any agent's thresholds may have changed)."""
        self.queue.clear()
        for key in self._store.agent_keys():
            self.evaluate(key)

    def forget(self, keys: list[AgentKey]) -> None:
        self._alerts.forget(keys)
        for key in keys:
            self.queue.drop(key)

    def _evaluate_due(self, keys: list[AgentKey]) -> None:
        for key in keys:
            self.evaluate(key)
