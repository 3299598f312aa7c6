"""One poll: ask the API about an agent, record the answer, log a failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from monitor.alerts import log_poll_failed
from monitor.api import ClientSettings, ElevenLabsClient, PollFailure
from monitor.config import WorkspaceConfig
from monitor.store import AgentKey, AgentRecord, Store


def client_settings(workspace: WorkspaceConfig, share: int = 1) -> ClientSettings:
    """A workspace's limits; with `share` replicas, each gets its part of the rate."""
    return ClientSettings(
        base_url=workspace.base_url,
        timeout=workspace.timeout,
        max_concurrency=workspace.max_concurrency,
        max_requests_per_second=workspace.max_requests_per_second / share,
        max_retries=workspace.max_retries,
    )


class Poller:
    def __init__(
        self,
        store: Store,
        clients: Mapping[str, ElevenLabsClient],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clients = clients
        self._clock = clock

    async def poll(self, key: AgentKey) -> AgentRecord | None:
        """Poll one agent and record the outcome; None if it stopped being watched."""
        client = self.clients.get(key.workspace)
        if client is None:
            return None
        outcome = await client.get_link(key.agent_id)
        record = self.store.record(outcome, key, self._clock())
        if record is not None and isinstance(outcome, PollFailure):
            log_poll_failed(record, outcome)
        return record
