"""A configured workspace's usage listing keeps only its configured agents, row by row.

Listed for the usage of two configured agents, a workspace of 50,000 agents held every row
until the listing's last page (the one-agent daemon peaked at 73 MiB against the 10,000-agent
simulated API): the listing now asks for the configured ids, and drops the rest as they come.
"""

from __future__ import annotations

import asyncio

from monitor.config.schema import Config
from monitor.elevenlabs.pool import wanted_clients
from monitor.model import UNKNOWN, AgentKey, AgentSummary, ListingFilter
from monitor.runtime.wiring import Runtime
from tests.fakeapi import FakeApi

API_KEY = "sk_usage_listing_test_key_000000"


def row(agent_id: str, last_call: float | None) -> AgentSummary:
    return AgentSummary(agent_id, last_call_time_unix_secs=last_call)


def test_a_filter_on_ids_keeps_those_ids_only() -> None:
    only = ListingFilter(agent_ids=frozenset({"a"}))
    assert only.keeps(row("a", None))
    assert not only.keeps(row("b", None))
    assert ListingFilter().keeps(row("b", None))  # no ids: every agent


def test_the_usage_listing_of_a_configured_workspace_asks_for_its_agents_only() -> None:
    api = FakeApi(listing=[row("a", 1000.0), *(row(f"other{i}", 5.0) for i in range(500))])
    config = Config.model_validate({"agents": [{"id": "a"}, {"id": "b"}]})
    runtime = Runtime(config, lambda _: API_KEY, make_client=api.client)

    async def scenario() -> None:
        workspaces = list(runtime.settings.current.workspaces)
        runtime.clients.update(wanted_clients(workspaces, {"default": API_KEY}, 1))
        await runtime.discovery.list_all()
        await runtime.clients.aclose()

    asyncio.run(scenario())
    [query] = api.queries
    assert query is not None
    assert query.agent_ids == frozenset({"a", "b"})
    usage = runtime.discovery.usage()
    assert {key: u.last_call for key, u in usage.items()} == {AgentKey("default", "a"): 1000.0}
    assert UNKNOWN not in {u.last_call for u in usage.values()}
