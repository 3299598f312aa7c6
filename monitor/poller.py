"""Polls: ask the API about an agent, record the answer, log a failure; and a paced cycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from monitor.alerts import log_poll_failed
from monitor.api import ClientSettings, ElevenLabsClient
from monitor.config import WorkspaceConfig
from monitor.model import AgentKey, PollFailure
from monitor.store import AgentRecord, Store


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


_T = TypeVar("_T")


async def paced(
    items: Sequence[_T], job: Callable[[_T], Awaitable[None]], *, workers: int, step: float
) -> None:
    """Run `job` on every item, at most `workers` at once, item i released no earlier than
    i * step seconds after the start (0: as fast as the workers go).

    A fixed set of workers keeps memory flat: 10,000 agents are 64 coroutines in flight,
    not 10,000 tasks waiting for a slot.
    """
    loop = asyncio.get_running_loop()
    workers = max(1, min(workers, len(items)))
    queue: asyncio.Queue[_T | None] = asyncio.Queue(maxsize=workers)

    async def feed() -> None:
        start = loop.time()
        for index, item in enumerate(items):
            delay = start + index * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.put(item)
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            await job(item)

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        for _ in range(workers):
            group.create_task(work())
