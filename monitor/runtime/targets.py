"""Where the agents to watch come from: the config, discovery, and this replica's shard."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from monitor.config.errors import ConfigError
from monitor.config.holder import Settings
from monitor.config.schema import MAX_LABEL_VALUE, Config
from monitor.logs import redact
from monitor.model import (
    AGENT_ID_RULE,
    AgentKey,
    AgentSummary,
    Labels,
    Target,
    is_safe_agent_id,
    merge_labels,
    printable_cut,
)

log = structlog.get_logger("monitor")

SHARD_ENV = "MONITOR_SHARD"
SKIPPED_ID_SHOWN = 64  # characters of a skipped id shown in its log line
SKIPPED_IDS_LOGGED = 5  # skipped ids logged one by one per listing; the rest are counted


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, key: AgentKey) -> bool:
        # A stable hash: Python's hash() is salted per process, so replicas would disagree.
        digest = hashlib.blake2b(f"{key.workspace}\0{key.agent_id}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None, source: str = "--shard") -> Shard | None:
    """`N/M` with 0 <= N < M, from the flag or $MONITOR_SHARD."""
    if text is None:
        text = os.environ.get(SHARD_ENV) or None
        source = SHARD_ENV
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigError([f"{source}: {text!r} is not a shard N/M with 0 <= N < M"])
    return Shard(int(match[1]), int(match[2]))


def tag_labels(
    labels_from_tags: Mapping[str, str], tags: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """Owner labels from a listed agent's tags (`discover.labels_from_tags`), sorted by name
    as Target.labels: each label takes the rest of the first tag that starts with its prefix
    (`team:payments` with {team: "team:"} gives team="payments"). An empty rest, or one that
    is not printable text, is passed over; a value is at most MAX_LABEL_VALUE characters."""
    labels: dict[str, str] = {}
    for name, prefix in labels_from_tags.items():
        for tag in tags:
            value = tag[len(prefix) :] if tag.startswith(prefix) else ""
            if value and value.isprintable():
                labels[name] = value[:MAX_LABEL_VALUE]
                break
    return tuple(sorted(labels.items()))


def listed_targets(
    workspace: str,
    listing: Iterable[AgentSummary],
    labels_from_tags: Mapping[str, str] | None = None,
) -> list[Target]:
    """The agents of a discovery listing, named as the listing names them, with the labels
    their tags give (`tag_labels`).

    An id that is not one safe path segment is skipped with one log line: requested, it
    would reach another path of the API's host. The line shows the id so that the operator
    can find the agent: upstream text of any length and content, so with any key redacted,
    then escaped and cut (redacted first: a cut through a key would leave half of it). Only
    the first few are logged one by one, the rest counted in one line: a listing of 50,000
    such ids must not hold the event loop writing 50,000 lines.
    """
    targets = []
    skipped = 0
    for agent in listing:
        if not is_safe_agent_id(agent.agent_id):
            reason = f"the agent id is not one path segment ({AGENT_ID_RULE})"
        elif redact(agent.agent_id) != agent.agent_id:
            reason = "the agent id carries a secret"  # it would become a metric label
        else:
            labels = tag_labels(labels_from_tags, agent.tags) if labels_from_tags else ()
            targets.append(Target(AgentKey(workspace, agent.agent_id), agent.name, labels))
            continue
        skipped += 1
        if skipped > SKIPPED_IDS_LOGGED:
            continue
        shown, cut = printable_cut(redact(agent.agent_id), SKIPPED_ID_SHOWN)
        log.warning(
            "discovered_agent_skipped",
            workspace=workspace,
            reason=reason,
            agent_id=shown,
            agent_id_cut=cut,
            id_length=len(agent.agent_id),
        )
    if skipped > SKIPPED_IDS_LOGGED:
        log.warning(
            "discovered_agents_skipped",
            workspace=workspace,
            count=skipped,
            logged=SKIPPED_IDS_LOGGED,
        )
    return targets


def resolve_targets(
    config: Config | Settings,
    discovered: Mapping[str, Iterable[Target]] | None = None,
    shard: Shard | None = None,
    archived: Mapping[str, Iterable[Target]] | None = None,
) -> list[Target]:
    """Configured agents, plus discovered ones of workspaces with `discover: true`, and the
    archived agents their sweep lists (`archived`; a live one of the same id wins).

    A configured agent keeps its configured name even when discovery lists it too. Owner
    labels: the workspace's, overridden key by key by a configured agent's; both win over
    the labels a discovered target carries (its tags'), key by key.
    """
    settings = config if isinstance(config, Settings) else Settings.of(config)
    targets: dict[AgentKey, Target] = {}
    for workspace in settings.workspaces:
        labels = settings.workspace_labels.get(workspace.name, ())
        if workspace.discover and (discovered is not None or archived is not None):
            merged: dict[Labels, Labels] = {}  # many agents carry the same tag labels
            for listed in itertools.chain(
                (archived or {}).get(workspace.name, ()), (discovered or {}).get(workspace.name, ())
            ):
                target = listed
                if labels:
                    if listed.labels not in merged:
                        merged[listed.labels] = merge_labels(listed.labels, labels)
                    target = dataclasses.replace(listed, labels=merged[listed.labels])
                targets[target.key] = target
        for agent in workspace.agents:
            key = AgentKey(workspace.name, agent.id)
            also = targets.get(key)  # listed too: its name if none is configured, its tags
            name = agent.name or (also.name if also is not None else "")
            carried = also.labels if also is not None else ()
            targets[key] = Target(key, name, merge_labels(carried, settings.labels_for(key)))
    return [t for t in targets.values() if shard is None or shard.owns(t.key)]
