"""A simulated ElevenLabs API on loopback, for `demo`, tests and benchmarks.

It answers with the same response models the client parses, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.model import AgentLinkResponse, ConversationToken


class Behaviour(enum.Enum):
    EXPIRES = "expires"  # a token expiring `expires_in` seconds after the simulator started
    NO_EXPIRY = "no_expiry"
    MISSING = "missing"
    NOT_FOUND = "not_found"
    FLAPPING = "flapping"  # every other answer is a 503
    RATE_LIMITED = "rate_limited"  # every third answer is a 429 with Retry-After: 1
    GARBAGE = "garbage"  # every fifth answer is not JSON
    SLOW = "slow"  # every tenth answer takes 30 s (a client's timeout should fire)


@dataclass
class SimAgent:
    agent_id: str
    name: str
    behaviour: Behaviour
    expires_in: float = 30 * 86400.0
    token: str = field(default_factory=lambda: "sim_" + secrets.token_urlsafe(16))
    hits: int = 0
    # Seconds before the simulator started that the agent was last called; None: never.
    called_ago: float | None = 120.0
    archived: bool = False


def demo_agents() -> list[SimAgent]:
    """One agent in every state (with the default thresholds of 7d and 1d)."""
    day = 86400.0
    return [
        SimAgent("agent_demo_ok", "support-bot", Behaviour.EXPIRES, 30 * day),
        # Usage: a sales bot nobody called for a month (idle), an onboarding bot never called.
        SimAgent(
            "agent_demo_warning", "sales-bot", Behaviour.EXPIRES, 3 * day, called_ago=30 * day
        ),
        SimAgent("agent_demo_critical", "billing-bot", Behaviour.EXPIRES, 6 * 3600.0),
        SimAgent("agent_demo_expired", "legacy-bot", Behaviour.EXPIRES, -2 * 3600.0),
        SimAgent("agent_demo_no_expiry", "faq-bot", Behaviour.NO_EXPIRY),
        SimAgent("agent_demo_missing", "onboarding-bot", Behaviour.MISSING, called_ago=None),
        SimAgent("agent_demo_not_found", "deleted-bot", Behaviour.NOT_FOUND),
        SimAgent("agent_demo_flapping", "flaky-bot", Behaviour.FLAPPING, 20 * day),
        # Crosses into `warning` 45 s into the demo: watch the on-time link_alert.
        SimAgent("agent_demo_crossing", "promo-bot", Behaviour.EXPIRES, 7 * day + 45),
    ]


def many_agents(count: int, expires_in: float = 30 * 86400.0) -> list[SimAgent]:
    """`count` healthy agents, for load and benchmarks."""
    return [
        SimAgent(f"agent_{i:06d}", f"bot-{i}", Behaviour.EXPIRES, expires_in) for i in range(count)
    ]


def soak_agents(count: int) -> list[SimAgent]:
    """Mostly healthy agents, with every kind of fault mixed in (for the soak benchmark)."""
    faults = [
        Behaviour.FLAPPING,
        Behaviour.RATE_LIMITED,
        Behaviour.GARBAGE,
        Behaviour.SLOW,
        Behaviour.NOT_FOUND,
        Behaviour.MISSING,
    ]
    agents = many_agents(count)
    for index, agent in enumerate(agents):
        if index % 10 < len(faults) and index % 20 < 10:  # 30% of agents have a fault
            agent.behaviour = faults[index % 10]
    return agents


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status)


class SimulatedApi:
    def __init__(
        self,
        agents: list[SimAgent],
        api_key: str,
        *,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.api_key = api_key
        self.latency = latency
        self.started = clock()
        self.requests = 0
        self.app = Starlette(
            routes=[
                Route("/v1/convai/agents/{agent_id}/link", self._link),
                Route("/v1/convai/agents", self._list),
            ]
        )

    def _authorised(self, request: Request) -> bool:
        return secrets.compare_digest(request.headers.get("xi-api-key", ""), self.api_key)

    async def _link(self, request: Request) -> Response:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self._authorised(request):
            return _error(401, "invalid_api_key", "Invalid API key")
        agent = self.agents.get(request.path_params["agent_id"])
        if agent is None or agent.behaviour is Behaviour.NOT_FOUND:
            return _error(404, "agent_not_found", "Agent not found")
        agent.hits += 1
        if agent.behaviour is Behaviour.FLAPPING and agent.hits % 2 == 0:
            return _error(503, "system_busy", "Try again later")
        if agent.behaviour is Behaviour.RATE_LIMITED and agent.hits % 3 == 0:
            response = _error(429, "rate_limit_exceeded", "Too many requests")
            response.headers["retry-after"] = "1"
            return response
        if agent.behaviour is Behaviour.GARBAGE and agent.hits % 5 == 0:
            return Response(b"<html>upstream error</html>", media_type="text/html")
        if agent.behaviour is Behaviour.SLOW and agent.hits % 10 == 0:
            await asyncio.sleep(30)
        token = None
        if agent.behaviour is not Behaviour.MISSING:
            expiry = None
            if agent.behaviour is not Behaviour.NO_EXPIRY:
                expiry = int(self.started + agent.expires_in)
            token = ConversationToken(
                agent_id=agent.agent_id,
                conversation_token=SecretStr(agent.token),
                expiration_time_unix_secs=expiry,
                purpose="shareable_link",
            )
        answer = AgentLinkResponse(agent_id=agent.agent_id, token=token)
        body = answer.model_dump(mode="json")
        if token is not None:
            body["token"]["conversation_token"] = agent.token
        return JSONResponse(body)

    def _row(self, agent: SimAgent) -> dict[str, object]:
        called = None if agent.called_ago is None else int(self.started - agent.called_ago)
        return {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "archived": agent.archived,
            "last_call_time_unix_secs": called,
        }

    async def _list(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(401, "invalid_api_key", "Invalid API key")
        size = min(100, max(1, int(request.query_params.get("page_size", "30") or 30)))
        archived = request.query_params.get("archived") == "true"
        ids = sorted(i for i, a in self.agents.items() if a.archived == archived)
        start = int(request.query_params.get("cursor") or 0)
        page = list(itertools.islice(ids, start, start + size))
        more = start + size < len(ids)
        return JSONResponse(
            {
                "agents": [self._row(self.agents[i]) for i in page],
                "next_cursor": str(start + size) if more else None,
                "has_more": more,
            }
        )
