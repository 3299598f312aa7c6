"""One poll: ask the API about an agent, record the verdict, log a failure."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from monitor.alerts import log_poll_failed
from monitor.elevenlabs.pool import ClientPool
from monitor.model import AgentKey, PollFailure, PollOutcome, Reason
from monitor.store import AgentRecord, Store

log = structlog.get_logger("monitor")


class Poller:
    def __init__(
        self,
        store: Store,
        clients: ClientPool,
        clock: Callable[[], float] = time.time,
        on_verdict: Callable[[AgentKey], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.clients = clients
        self._clock = clock
        self._on_verdict = on_verdict

    async def poll(self, key: AgentKey, deadline: float | None = None) -> AgentRecord | None:
        """Poll one agent and record the verdict; None if it stopped being watched.

        `deadline` (event-loop time) is passed down to the client: by then there is a verdict.
        """
        client = self.clients.get(key.workspace)
        if client is None:
            return None
        try:
            outcome = await client.get_link(key.agent_id, deadline)
        except Exception as exc:  # a bug must not stop the other agents' polls
            log.error(
                "poll_crashed",
                workspace=key.workspace,
                agent_id=key.agent_id,
                error=type(exc).__name__,
            )
            # Still a verdict: silence would leave the agent unknown and the process unready.
            outcome = PollFailure(
                Reason.INVALID_RESPONSE, f"the answer could not be handled ({type(exc).__name__})"
            )
        return self.judge(key, outcome)

    def judge(self, key: AgentKey, outcome: PollOutcome) -> AgentRecord | None:
        """Record a verdict reached here or elsewhere (a poll cut by its cycle's deadline)."""
        record = self.store.record(outcome, key, self._clock())
        if record is None:
            return None
        if isinstance(outcome, PollFailure):
            log_poll_failed(record, outcome)
        self._on_verdict(key)
        return record
