"""A scripted stand-in for a workspace's API client, for runtime tests on the fake clock
(the HTTP side has its own tests against a real loopback server)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.elevenlabs.client import ClientSettings
from monitor.elevenlabs.limiter import RateLimiter
from monitor.evaluate import TOKEN_MISSING, Kind, Observation
from monitor.model import (
    AgentSummary,
    LinkAnswer,
    ListingFilter,
    PollFailure,
    PollOutcome,
    Reason,
)

Script = Callable[[], Awaitable[PollOutcome]]


def expires(at: float | None, version: str = "v1") -> Script:
    async def answer() -> PollOutcome:
        return LinkAnswer(Observation(Kind.LINK, at), f"{version}-{at}")  # the digest

    return answer


def missing() -> Script:
    async def answer() -> PollOutcome:
        return LinkAnswer(TOKEN_MISSING, None)

    return answer


def fails(reason: Reason = Reason.SERVER_ERROR, detail: str = "HTTP 503") -> Script:
    async def answer() -> PollOutcome:
        return PollFailure(reason, detail)

    return answer


def after(seconds: float, then: Script) -> Script:
    async def answer() -> PollOutcome:
        await asyncio.sleep(seconds)
        return await then()

    return answer


@dataclass
class Call:
    at: float  # event-loop time
    agent_id: str
    key: str


@dataclass
class FakeApi:
    answers: dict[str, Script] = field(default_factory=dict)
    listing: list[AgentSummary] | PollFailure = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    listings: int = 0
    queries: list[ListingFilter | None] = field(default_factory=list)  # one per listing
    # The archived agents' listing (`list_agents(archived=True)`), counted on its own.
    archived: list[AgentSummary] | PollFailure = field(default_factory=list)
    archived_queries: list[ListingFilter | None] = field(default_factory=list)
    closed: int = 0

    def set(self, agent_id: str, script: Script) -> None:
        self.answers[agent_id] = script

    def client(self, settings: ClientSettings, key: str, _: RateLimiter) -> FakeClient:
        return FakeClient(self, settings, key)

    def count(self, agent_id: str | None = None) -> int:
        return sum(1 for c in self.calls if agent_id is None or c.agent_id == agent_id)

    def times(self, agent_id: str | None = None) -> list[float]:
        return [c.at for c in self.calls if agent_id is None or c.agent_id == agent_id]


class FakeClient:
    def __init__(self, api: FakeApi, settings: ClientSettings, key: str) -> None:
        self.api = api
        self.settings = settings
        self.key = key

    async def get_link(self, agent_id: str, deadline: float | None = None) -> PollOutcome:
        self.api.calls.append(Call(asyncio.get_running_loop().time(), agent_id, self.key))
        script = self.api.answers.get(agent_id)
        if script is None:
            return PollFailure(Reason.NOT_FOUND, "HTTP 404 agent_not_found", 404)
        return await script()

    async def list_agents(
        self, query: ListingFilter | None = None, *, archived: bool = False
    ) -> list[AgentSummary] | PollFailure:
        if archived:
            self.api.archived_queries.append(query)
            listing = self.api.archived
        else:
            self.api.listings += 1
            self.api.queries.append(query)
            listing = self.api.listing
        if query is None or isinstance(listing, PollFailure):
            return listing
        return [agent for agent in listing if query.keeps(agent)]

    async def aclose_when_idle(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.api.closed += 1
