"""Discovery filters and labels from tags (issue 17): `discover:` as a map.

What the API filters is sent as the listing's query parameters (`search`, `tags` repeated,
`created_by_user_id`); the rest (`exclude_tags`, `name_pattern`, and `tags` again as a guard)
is checked on the answer, row by row; `labels_from_tags` gives a discovered agent owner labels.
In-process: the config parsed as `validate-config` parses it, `ElevenLabsClient` and
`Discovery` over `httpx.MockTransport`, the Runtime over tests/fakeapi.py. That configured
labels win over tag labels is resolve_targets' (tested with the owner labels).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable

import httpx
import pytest

from monitor import logs
from monitor.config.errors import ConfigError
from monitor.config.holder import ConfigHolder, Settings
from monitor.config.loading import parse_config
from monitor.config.schema import Config, DiscoverSettings
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.elevenlabs.limiter import RateLimiter
from monitor.elevenlabs.pool import ApiClient, ClientPool, wanted_clients
from monitor.model import AgentKey, AgentSummary, Health, ListingFilter, PollFailure, Target
from monitor.runtime.discovery import Discovery
from monitor.runtime.targets import tag_labels
from monitor.runtime.wiring import Runtime
from tests.fakeapi import FakeApi

API_KEY = "sk_discovery_filters_0123456789abcdef0123"
BASE_URL = "https://api.elevenlabs.test"
Handler = Callable[[httpx.Request], httpx.Response]
Row = dict[str, object]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", set())
    logs.register_secret(API_KEY)


def config(text: str) -> Config:
    return parse_config(textwrap.dedent(text).lstrip("\n"), "config.yaml")


def problems(text: str) -> list[str]:
    """The lines `validate-config` prints for this file."""
    with pytest.raises(ConfigError) as caught:
        config(text)
    return caught.value.problems


def wanted(text: str) -> DiscoverSettings:
    """The single workspace's discovery settings, from a `discover:` block."""
    (workspace,) = config(text).resolved_workspaces()
    assert workspace.discovery is not None
    return workspace.discovery


FILTERS = """
    discover:
      search: prod
      tags: [customer-facing, partner]
      exclude_tags: [internal]
      name_pattern: "^prod-"
      created_by: "@me"
      labels_from_tags: {team: "team:"}
    """


# --- the config ------------------------------------------------------------------------------


def test_discover_takes_true_false_or_a_map_and_a_map_means_on() -> None:
    assert config("discover: true\n").resolved_workspaces()[0].discovery == DiscoverSettings()
    off = config("agents: [{id: a1}]\ndiscover: false\n")
    assert off.resolved_workspaces()[0].discovery is None
    assert Settings.of(off).discovering == frozenset()
    # No agents, and a map with no key at all: discovery is on, so the config is valid.
    on = config("discover: {}\n")
    assert Settings.of(on).discovering == {"default"}
    assert wanted(FILTERS) == DiscoverSettings(
        search="prod",
        tags=["customer-facing", "partner"],
        exclude_tags=["internal"],
        name_pattern="^prod-",
        created_by="@me",
        labels_from_tags={"team": "team:"},
    )


def test_each_workspace_has_its_own_discovery() -> None:
    loaded = config(
        """
        workspaces:
          - name: prod
            discover: {tags: [customer-facing]}
          - name: eu
            discover: true
          - name: staging
            agents: [{id: a1}]
            discover: false
        """
    )
    assert Settings.of(loaded).discovering == {"prod", "eu"}
    prod, eu, staging = loaded.resolved_workspaces()
    assert prod.discovery == DiscoverSettings(tags=["customer-facing"])
    assert (eu.discovery, staging.discovery) == (DiscoverSettings(), None)


OWN_LABELS = "agent_id, agent_name, alertname, instance, job, level, namespace, reason, severity, state, workspace"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            'discover:\n  name_pattern: "^prod-("\n',
            "config.yaml:2: discover.name_pattern: not a regular expression in RE2 syntax (no backreferences or lookaround): "
            "missing ): ^prod-(",
        ),
        (
            'workspaces:\n  - name: eu\n    discover: {name_pattern: "[a-"}\n',
            "config.yaml:3: workspaces[0].discover.name_pattern: not a regular expression in RE2 syntax (no backreferences or lookaround): "
            "missing ]: [a-",
        ),
        (
            'discover:\n  name_pattern: "(a)\\\\1"\n',
            "config.yaml:2: discover.name_pattern: not a regular expression in RE2 syntax (no backreferences or lookaround): "
            "invalid escape sequence: \\1",
        ),
        (
            'discover:\n  labels_from_tags: {job: "job:"}\n',
            f"config.yaml:2: discover.labels_from_tags: 'job' is one of the monitor's own "
            f"labels ({OWN_LABELS})",
        ),
        (
            'discover:\n  labels_from_tags: {__team: "team:"}\n',
            "config.yaml:2: discover.labels_from_tags: '__team': names starting with __ are "
            "reserved by Prometheus",
        ),
        (
            'discover:\n  labels_from_tags: {team-name: "team:"}\n',
            "config.yaml:2: discover.labels_from_tags: 'team-name' is not a Prometheus label "
            "name ([a-zA-Z_][a-zA-Z0-9_]*)",
        ),
        (
            'discover:\n  labels_from_tags: {team: ""}\n',
            "config.yaml:2: discover.labels_from_tags.team: String should have at least 1 "
            "character",
        ),
        (
            'discover:\n  created_by: "@you"\n',
            "config.yaml:2: discover.created_by: '@you' is neither @me nor a user id "
            "(1 to 128 of letters, digits, _ . -)",
        ),
        (
            'discover:\n  tags: [""]\n',
            "config.yaml:2: discover.tags[0]: String should have at least 1 character",
        ),
        (
            'discover: "yes"\n',
            "config.yaml:1: discover: must be true, false or a map "
            "(search, tags, exclude_tags, ...)",
        ),
        (
            "discover:\n  tag: [a]\n",
            "config.yaml:2: discover.tag: unknown key (check the spelling; unknown keys are "
            "errors)",
        ),
    ],
)
def test_a_bad_discover_map_is_refused_in_one_line(text: str, line: str) -> None:
    assert problems(text) == [line]


# --- what the listing sends ------------------------------------------------------------------


SETTINGS = ClientSettings(
    base_url=BASE_URL,
    timeout=5.0,
    max_concurrency=4,
    max_requests_per_second=1000.0,
    max_retries=0,
)


def client(handler: Handler) -> ElevenLabsClient:
    return ElevenLabsClient(SETTINGS, API_KEY, transport=httpx.MockTransport(handler))


def page(rows: list[Row], cursor: str | None = None) -> httpx.Response:
    body = {"agents": rows, "next_cursor": cursor, "has_more": cursor is not None}
    return httpx.Response(200, content=json.dumps(body).encode())


def serving(pages: list[list[Row]], seen: list[httpx.URL]) -> Handler:
    """The pages in turn (cursor `c<i>`), whatever the filters; every URL asked kept."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        cursor = request.url.params.get("cursor")
        index = int(cursor[1:]) if cursor else 0
        return page(pages[index], f"c{index + 1}" if index + 1 < len(pages) else None)

    return handler


def list_agents(
    handler: Handler, query: ListingFilter | None = None
) -> list[AgentSummary] | PollFailure:
    async def scenario() -> list[AgentSummary] | PollFailure:
        listing = client(handler)
        try:
            return await listing.list_agents(query)
        finally:
            await listing.aclose()

    return asyncio.run(scenario())


def test_the_listing_sends_what_the_api_filters_on_every_page() -> None:
    seen: list[httpx.URL] = []
    pages: list[list[Row]] = [[{"agent_id": "p0"}], [{"agent_id": "p1"}]]
    listing = list_agents(serving(pages, seen), wanted(FILTERS).listing_filter())
    assert isinstance(listing, list), listing
    sent = [
        ("page_size", "100"),
        ("archived", "false"),
        ("search", "prod"),
        ("tags", "customer-facing"),
        ("tags", "partner"),
        ("created_by_user_id", "@me"),
    ]
    assert [url.params.multi_items() for url in seen] == [sent, [*sent, ("cursor", "c1")]]
    # `tags` repeated, once for each tag: how the API takes "any of several".
    assert "tags=customer-facing&tags=partner" in str(seen[0])
    # What the API cannot filter is never sent.
    assert not {"exclude_tags", "name_pattern", "labels_from_tags"} & set(seen[0].params)


@pytest.mark.parametrize("query", [None, ListingFilter(), DiscoverSettings().listing_filter()])
def test_discover_true_sends_no_filter(query: ListingFilter | None) -> None:
    seen: list[httpx.URL] = []
    listing = list_agents(serving([[{"agent_id": "a1"}]], seen), query)
    assert isinstance(listing, list)
    assert [a.agent_id for a in listing] == ["a1"]
    assert [url.params.multi_items() for url in seen] == [
        [("page_size", "100"), ("archived", "false")]
    ]


# --- what is checked on the answer -----------------------------------------------------------

# An API that ignores every filter: what is kept is the answer's checks alone.
UNFILTERED: list[Row] = [
    {"agent_id": "pay", "name": "prod-payments", "tags": ["customer-facing", "team:payments"]},
    {"agent_id": "int", "name": "prod-internal", "tags": ["customer-facing", "internal"]},
    {"agent_id": "stg", "name": "staging-payments", "tags": ["customer-facing"]},
    {"agent_id": "untagged", "name": "prod-untagged"},
    {"agent_id": "other", "name": "prod-other", "tags": ["team:other"]},
    {"agent_id": "partner", "name": "prod-partner", "tags": ["partner", "team:partners"]},
]


def test_exclude_tags_name_pattern_and_tags_again_are_checked_on_the_answer() -> None:
    listing = list_agents(serving([UNFILTERED], []), wanted(FILTERS).listing_filter())
    assert isinstance(listing, list), listing
    # int: excluded tag; stg: the name pattern; untagged and other: none of the tags.
    assert [a.agent_id for a in listing] == ["pay", "partner"]


@pytest.mark.parametrize(
    ("block", "kept"),
    [
        (
            "discover: {exclude_tags: [internal, legacy]}",
            ["pay", "stg", "untagged", "other", "partner"],
        ),
        ("discover: {name_pattern: payments$}", ["pay", "stg"]),
        ("discover: {name_pattern: '^prod-p'}", ["pay", "partner"]),
        ("discover: {tags: [team:other, partner]}", ["other", "partner"]),
        ("discover: {search: staging}", ["pay", "int", "stg", "untagged", "other", "partner"]),
    ],
)
def test_each_answer_check_on_its_own(block: str, kept: list[str]) -> None:
    """`search` is the API's alone (its matching is its own): never checked again here."""
    listing = list_agents(serving([UNFILTERED], []), wanted(block).listing_filter())
    assert isinstance(listing, list), listing
    assert [a.agent_id for a in listing] == kept


def test_a_rows_bad_tags_never_cost_the_row_or_the_page() -> None:
    rows: list[Row] = [
        {"agent_id": "a_text", "tags": "team:payments"},
        {"agent_id": "a_mixed", "tags": [1, None, {"tag": "x"}, ["y"], "ok", True]},
        {"agent_id": "a_long", "tags": ["t" * 1000]},
        {"agent_id": "a_many", "tags": [f"t{i}" for i in range(80)]},
        {"agent_id": "a_null", "tags": None},
        {"agent_id": "a_key", "tags": [f"team:{API_KEY}"]},
        {"agent_id": "a_surrogate", "tags": ["team:x\ud800y"]},
    ]
    # Every tag kept after the filters (a label from any tag), to see what the rows held.
    listing = list_agents(serving([rows], []), ListingFilter(label_prefixes=("",)))
    assert isinstance(listing, list), listing
    tags = {a.agent_id: a.tags for a in listing}
    assert tags == {
        "a_text": (),
        "a_mixed": ("ok",),
        "a_long": ("t" * 256,),
        "a_many": tuple(f"t{i}" for i in range(50)),
        "a_null": (),
        "a_key": ("team:[REDACTED]",),
        "a_surrogate": ("team:x\ufffdy",),
    }


# --- labels from tags ------------------------------------------------------------------------


def test_a_label_takes_the_rest_of_the_first_tag_with_its_prefix() -> None:
    prefixes = {"team": "team:", "env": "env="}
    tags = ["env=", "team:payments", "team:support", "env=prod"]
    assert tag_labels(prefixes, tags) == (("env", "prod"), ("team", "payments"))
    assert tag_labels(prefixes, ["owner:payments", "Team:x"]) == ()
    assert tag_labels({}, tags) == ()
    # Not one line of printable text: passed over, as an empty value is.
    assert tag_labels(prefixes, ["team:a\nb", "team:\x1b[31m", "team:ok"]) == (("team", "ok"),)
    assert tag_labels(prefixes, ["team:" + "v" * 300]) == (("team", "v" * 256),)


def discovered(text: str, rows: list[Row], seen: list[httpx.URL]) -> list[Target]:
    """What Discovery finds for the single workspace of `text` over these rows."""

    def make(settings: ClientSettings, key: str, limiter: RateLimiter) -> ApiClient:
        transport = httpx.MockTransport(serving([rows], seen))
        return ElevenLabsClient(settings, key, transport=transport, limiter=limiter)

    loaded = config(f"elevenlabs: {{base_url: '{BASE_URL}'}}\n" + textwrap.dedent(text))

    async def scenario() -> list[Target]:
        pool = ClientPool(make)
        pool.update(wanted_clients(loaded.resolved_workspaces(), {"default": API_KEY}))
        discovery = Discovery(pool, Health(), ConfigHolder(loaded))
        try:
            await discovery.list_all()
            return discovery.found["default"]
        finally:
            await pool.aclose()

    return asyncio.run(scenario())


def test_discovered_targets_carry_the_labels_their_tags_give() -> None:
    seen: list[httpx.URL] = []
    found = discovered(FILTERS, UNFILTERED, seen)
    assert found == [
        Target(AgentKey("default", "pay"), "prod-payments", (("team", "payments"),)),
        Target(AgentKey("default", "partner"), "prod-partner", (("team", "partners"),)),
    ]
    assert seen[0].params.get_list("tags") == ["customer-facing", "partner"]


def test_without_labels_from_tags_a_discovered_target_has_no_labels() -> None:
    found = discovered("discover: true\n", UNFILTERED, [])
    assert len(found) == len(UNFILTERED)
    assert all(t.labels == () for t in found)


# --- a reload ----------------------------------------------------------------------------------


def test_a_reload_that_changes_the_filters_lists_again_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a discovery_interval later: the old filters' list would stand for up to 15m."""
    api = FakeApi()
    first = config("discover: {tags: [a]}\n")
    runtime = Runtime(first, lambda _: API_KEY, make_client=api.client)
    relisted: list[str] = []

    async def scenario() -> None:
        runtime.start()
        monkeypatch.setattr(runtime.jobs, "run_now", relisted.append)
        try:
            runtime.apply(config("discover: {tags: [a]}\n"), {"default": API_KEY})
            assert relisted == []
            runtime.apply(config("discover: {tags: [b]}\n"), {"default": API_KEY})
            assert relisted == ["discover"]
            runtime.apply(
                config("discover: {tags: [b], labels_from_tags: {team: 't:'}}\n"),
                {"default": API_KEY},
            )
            assert relisted == ["discover"] * 2
            runtime.apply(config("agents: [{id: a1}]\n"), {"default": API_KEY})
            assert relisted == ["discover"] * 2
        finally:
            await runtime.stop()

    asyncio.run(scenario())


def test_the_fake_clients_listing_applies_the_answer_checks() -> None:
    """tests/fakeapi.py filters as the real client does, for the runtime tests."""
    api = FakeApi(
        listing=[
            AgentSummary(agent_id="a1", name="prod-a", tags=("x",)),
            AgentSummary(agent_id="a2", name="prod-b", tags=("internal",)),
        ]
    )
    query = wanted("discover: {exclude_tags: [internal]}\n").listing_filter()
    fake = api.client(SETTINGS, API_KEY, RateLimiter(1000.0))
    listing = asyncio.run(fake.list_agents(query))
    assert isinstance(listing, list)
    assert [a.agent_id for a in listing] == ["a1"]
    assert api.queries == [query]


def test_a_kept_agent_keeps_only_the_tags_a_label_is_taken_from() -> None:
    """A listing holds its kept agents until the last page: 50 tags of 256 characters on each
    of 50,000 agents would be 640 million characters held for nothing."""
    noise = [f"n{i:03d}" + "x" * 252 for i in range(48)]
    rows: list[Row] = [
        {"agent_id": "a1", "name": "prod-a", "tags": ["customer-facing", *noise, "team:pay"]},
        {"agent_id": "a2", "name": "prod-b", "tags": ["partner", *noise]},
    ]
    seen: list[httpx.URL] = []
    listing = list_agents(serving([rows], seen), wanted(FILTERS).listing_filter())
    assert isinstance(listing, list), listing
    assert [(a.agent_id, a.tags) for a in listing] == [("a1", ("team:pay",)), ("a2", ())]
    plain = list_agents(serving([rows], seen), wanted("discover: true").listing_filter())
    assert isinstance(plain, list)
    assert [a.tags for a in plain] == [(), ()]


def test_a_backtracking_pattern_on_a_hostile_name_decides_at_once() -> None:
    """With Python's `re`, `^(\\w+\\s?)+$` on this 51-character name held the event loop
    for minutes (every poll, probe and SIGTERM with it); RE2 matches in linear time."""
    query = wanted('discover: {name_pattern: "^(\\\\w+\\\\s?)+$"}').listing_filter()
    hostile = AgentSummary(agent_id="a1", name="support agent number " + "a" * 30 + "!")
    assert not query.keeps(hostile)
    assert query.keeps(AgentSummary(agent_id="a2", name="support agent"))
