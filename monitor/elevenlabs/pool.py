"""One API client per workspace: replaced when its settings or key change, retired only once
nothing uses it, and one rate limiter per workspace that outlives every replacement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from monitor.config.schema import WorkspaceConfig
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.elevenlabs.limiter import RateLimiter
from monitor.model import AgentSummary, ListingFilter, PollFailure, PollOutcome


class ApiClient(Protocol):
    """What the runtime needs of a workspace's client (ElevenLabsClient, or a test's fake)."""

    settings: ClientSettings

    async def get_link(self, agent_id: str, deadline: float | None = None) -> PollOutcome: ...

    async def list_agents(
        self, query: ListingFilter | None = None
    ) -> list[AgentSummary] | PollFailure: ...

    async def aclose_when_idle(self) -> None: ...

    async def aclose(self) -> None: ...


ClientFactory = Callable[[ClientSettings, str, RateLimiter], ApiClient]


def client_settings(workspace: WorkspaceConfig, share: int = 1) -> ClientSettings:
    """A workspace's limits; with `share` replicas, each gets its part of the rate."""
    return ClientSettings(
        base_url=workspace.base_url,
        timeout=workspace.timeout,
        max_concurrency=workspace.max_concurrency,
        max_requests_per_second=workspace.max_requests_per_second / share,
        max_retries=workspace.max_retries,
        proxy=workspace.proxy,
        ca_file=str(workspace.ca_file) if workspace.ca_file is not None else None,
    )


def http_clients(on_request: Callable[[float], None]) -> ClientFactory:
    """Real clients, each reporting its requests' durations to `on_request`."""

    def make(settings: ClientSettings, key: str, limiter: RateLimiter) -> ApiClient:
        return ElevenLabsClient(settings, key, on_request=on_request, limiter=limiter)

    return make


class ClientPool:
    def __init__(self, make_client: ClientFactory) -> None:
        self._make = make_client
        self._clients: dict[str, ApiClient] = {}
        self._identity: dict[str, tuple[ClientSettings, str]] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._retiring: dict[asyncio.Task[None], ApiClient] = {}

    def get(self, workspace: str) -> ApiClient | None:
        return self._clients.get(workspace)

    def workers(self, workspace: str) -> int:
        client = self._clients.get(workspace)
        return client.settings.max_concurrency if client else 1

    def update(self, wanted: Mapping[str, tuple[ClientSettings, str]]) -> None:
        """Clients for exactly these workspaces, given (settings, key); a client is replaced
        only when its settings or key changed, and a replaced one keeps serving what it has
        in flight."""
        for name in [n for n in self._clients if n not in wanted]:
            self._retire(self._clients.pop(name))
            del self._identity[name], self._limiters[name]
        for name, (settings, key) in wanted.items():
            if self._identity.get(name) == (settings, key):
                continue
            limiter = self._limiters.get(name)
            if limiter is None:
                limiter = self._limiters[name] = RateLimiter(settings.max_requests_per_second)
            elif limiter.rate != settings.max_requests_per_second:
                limiter.retune(settings.max_requests_per_second)
            if name in self._clients:
                self._retire(self._clients[name])
            self._clients[name] = self._make(settings, key, limiter)
            self._identity[name] = (settings, key)

    def _retire(self, client: ApiClient) -> None:
        task = asyncio.get_running_loop().create_task(client.aclose_when_idle())
        self._retiring[task] = client
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    @property
    def retiring(self) -> int:
        """Replaced clients not yet closed."""
        return len(self._retiring)

    async def aclose(self) -> None:
        """Close every client now, retiring ones included (shutdown)."""
        clients = [*self._clients.values(), *self._retiring.values()]
        for task in list(self._retiring):
            task.cancel()
        self._clients.clear()
        self._identity.clear()
        closing: list[Awaitable[None]] = [c.aclose() for c in clients]
        await asyncio.gather(*closing, return_exceptions=True)


def wanted_clients(
    workspaces: Iterable[WorkspaceConfig], keys: Mapping[str, str], share: int = 1
) -> dict[str, tuple[ClientSettings, str]]:
    """What `ClientPool.update` takes: each workspace's settings and key."""
    return {w.name: (client_settings(w, share), keys[w.name]) for w in workspaces}
