"""Discovery filters and labels from tags (issue 17) end to end: the real daemon against the
stand-in API, which filters its listing as the API does (`search`, `tags` any of,
`created_by_user_id`) and records the query parameters it received."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

StartDaemon = Callable[..., Daemon]
DAY = 86400

# agent_id: (name, tags, creator). Only pay_bot and partner_bot pass every filter.
AGENTS = {
    "pay_bot": ("prod-pay-bot", ["customer-facing", "team:", "team:payments", "team:x"], "me"),
    "partner_bot": ("prod-partner-bot", ["partner"], "me"),
    "internal_bot": ("prod-internal-bot", ["customer-facing", "internal"], "me"),  # exclude_tags
    "legacy": ("prod-pay-legacy", ["customer-facing"], "me"),  # name_pattern
    "staging_bot": ("staging-bot", ["customer-facing"], "me"),  # search
    "untagged_bot": ("prod-untagged-bot", [], "me"),  # tags
    "their_bot": ("prod-their-bot", ["customer-facing"], "someone_else"),  # created_by
}
DISCOVER = {
    "search": "prod",
    "tags": ["customer-facing", "partner"],
    "exclude_tags": ["internal"],
    "name_pattern": "-bot$",
    "created_by": "@me",
    "labels_from_tags": {"team": "team:"},
}


def test_only_the_agents_that_pass_every_filter_are_watched_with_their_tag_labels(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.user_id = "me"
    standin.listing = [(agent_id, name, False) for agent_id, (name, _, _) in AGENTS.items()]
    for agent_id, (_, tags, creator) in AGENTS.items():
        standin.tags[agent_id] = tags
        standin.creators[agent_id] = creator
        standin.set(agent_id, link(canary_token(agent_id), time.time() + 30 * DAY))
    config = write_config([], discover=DISCOVER)
    daemon = start_daemon(config)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")

    info = {
        dict(labels)["agent_id"]: dict(labels) for labels in daemon.samples("elevenlabs_agent_info")
    }
    assert sorted(info) == ["partner_bot", "pay_bot"]
    assert {dict(k)["agent_id"] for k in daemon.samples("elevenlabs_agent_link_state")} == {
        "partner_bot",
        "pay_bot",
    }
    # The first team: tag with a value wins; an agent without one has no team label.
    assert info["pay_bot"]["team"] == "payments"
    assert "team" not in info["partner_bot"]
    assert daemon.value("elevenlabs_link_monitor_discovered_agents", workspace="default") == 2
    # Only the watched agents were polled.
    assert standin.count("internal_bot") == standin.count("legacy") == 0

    # The stand-in filtered on what it was sent: the API's filters, `tags` repeated.
    assert standin.listing_queries
    for query in standin.listing_queries:
        assert query["search"] == ["prod"]
        assert query["tags"] == ["customer-facing", "partner"]
        assert query["created_by_user_id"] == ["@me"]
        assert not {"exclude_tags", "name_pattern", "labels_from_tags"} & set(query)
    # The live listing, and the exposure sweep's (archived agents), filtered alike.
    assert {q["archived"][0] for q in standin.listing_queries} == {"false", "true"}
    assert daemon.stop() == 0
