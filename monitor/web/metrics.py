"""Prometheus exposition, built from the state store at scrape time.

Per-agent series are rendered by hand and kept, already joined, in runs of agents (see Run):
an agent is rendered again only when its record or state changes. At 10,000 agents that is
some 160,000 series, which prometheus-client's generic path takes about two seconds to
render on every scrape.
The monitor's own series go through an ordinary prometheus-client registry.

Both formats share every sample line (OpenMetrics differs only in a counter family's name
and the closing `# EOF`), so the cache serves both.
"""

from __future__ import annotations

import collections
import itertools
import operator
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from monitor.config.holder import ConfigHolder
from monitor.evaluate import STATES, Kind, State, Thresholds
from monitor.model import UNKNOWN, AgentKey, Health
from monitor.peragent import Kept, PerAgent
from monitor.store import AgentRecord, Store
from monitor.web.ownmetrics import MonitorCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Requests to the API take 50 ms to a few seconds; timeouts are 10 s by default.
POLL_DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The body is sent in pieces of about this size: large enough that a scrape is a few
# writes, small enough that a 10 MB exposition is never held twice.
CHUNK_BYTES = 256 * 1024
# Agents per Run: a changed agent costs a copy of its run's blocks (about 40 KiB a family
# at 10,000 agents), and a scrape sends 12 blocks per run (400 pieces at 10,000 agents).
RUN_AGENTS = 256


@dataclass(frozen=True)
class Family:
    name: str  # the sample name: a counter's ends in `_total`
    kind: str
    help: str

    def header(self, openmetrics: bool) -> bytes:
        # Text format 0.0.4 names a counter family with its `_total` (as prometheus-client
        # does); OpenMetrics names the family without it and keeps it on the samples.
        name = self.name
        if openmetrics and self.kind == "counter":
            name = name.removesuffix("_total")
        return f"# HELP {name} {self.help}\n# TYPE {name} {self.kind}\n".encode()


INFO = Family(
    "elevenlabs_agent_info",
    "gauge",
    "Always 1; the agent's name, which can change, and its owner labels, as labels joined in "
    "by agent_id.",
)
EXPIRY = Family(
    "elevenlabs_agent_link_expiry_timestamp_seconds",
    "gauge",
    "Unix time the agent link's token expires; absent without a token or an expiry.",
)
MISSING = Family(
    "elevenlabs_agent_link_token_missing",
    "gauge",
    "1 when the last successful poll said the agent has no link token.",
)
STATE = Family(
    "elevenlabs_agent_link_state",
    "gauge",
    "1 for the agent link's current state, 0 for the others.",
)
SUCCESS = Family(
    "elevenlabs_agent_link_poll_success", "gauge", "1 when the last poll got a valid answer."
)
LAST_SUCCESS = Family(
    "elevenlabs_agent_link_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last valid answer.",
)
ERRORS = Family("elevenlabs_agent_link_poll_errors_total", "counter", "Failed polls by reason.")
ROTATIONS = Family(
    "elevenlabs_agent_link_token_rotations_total",
    "counter",
    "Times the token or its expiry changed between successful polls.",
)
EXPIRES_IN = Family(
    "elevenlabs_agent_link_expires_in_seconds",
    "gauge",
    "Seconds until the agent link's token expires (negative once expired).",
)
THRESHOLD = Family(
    "elevenlabs_agent_link_threshold_seconds",
    "gauge",
    "Seconds before expiry at which the agent link enters the state named by level: the "
    "agent's own thresholds.",
)
LAST_CALL = Family(
    "elevenlabs_agent_last_call_timestamp_seconds",
    "gauge",
    "Unix time the agent was last called, as the agent listing says; absent when never "
    "called or unknown.",
)
NEVER_CALLED = Family(
    "elevenlabs_agent_never_called",
    "gauge",
    "1 when the agent listing says the agent was never called, 0 when it says when it last "
    "was; absent when unknown (so rules tell never from unknown).",
)
ARCHIVED = Family(
    "elevenlabs_agent_archived",
    "gauge",
    "1 for an archived agent, 0 for a live one; absent until a listing has said which.",
)
AGENT_FAMILIES = (
    INFO,
    EXPIRY,
    MISSING,
    STATE,
    SUCCESS,
    LAST_SUCCESS,
    ERRORS,
    ROTATIONS,
    THRESHOLD,
    LAST_CALL,
    NEVER_CALLED,
    ARCHIVED,
)
_FAMILIES = range(len(AGENT_FAMILIES))


def _number(value: float) -> str:
    """A sample value exactly as prometheus-client writes it."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _escape(value: str) -> str:
    # Agent names are attacker-controlled text: escape as the exposition format requires.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(key: AgentKey) -> str:
    # The identity only: a name is on the info series alone, so a rename splits nothing.
    return f'workspace="{_escape(key.workspace)}",agent_id="{_escape(key.agent_id)}"'


def render_agent(record: AgentRecord, state: State, thresholds: Thresholds) -> tuple[bytes, ...]:
    """One agent's lines for each of AGENT_FAMILIES, in order, encoded once."""
    labels = _labels(record.key)
    # The owner labels, after the name: their names were checked at load (never one of ours).
    owners = "".join(f',{name}="{_escape(value)}"' for name, value in record.labels)
    observation = record.observation
    expiry = ""
    if observation is not None and observation.expires_at is not None:
        expiry = f"{EXPIRY.name}{{{labels}}} {_number(observation.expires_at)}\n"
    missing = observation is not None and observation.kind is Kind.MISSING
    last_success = ""
    if record.last_success is not None:
        last_success = f"{LAST_SUCCESS.name}{{{labels}}} {_number(record.last_success)}\n"
    # Counters of reasons that never happened are left out: pre-set, they would add eight
    # series per agent (80,000 at 10,000 agents) to say zero.
    errors = "".join(
        f'{ERRORS.name}{{{labels},reason="{reason.value}"}} {count}.0\n'
        for reason, count in record.errors.items()
        if count
    )
    parts = (
        f'{INFO.name}{{{labels},agent_name="{_escape(record.name)}"{owners}}} 1.0\n',
        expiry,
        f"{MISSING.name}{{{labels}}} {1.0 if missing else 0.0}\n",
        "".join(
            f'{STATE.name}{{{labels},state="{s.value}"}} {1.0 if s is state else 0.0}\n'
            for s in STATES
        ),
        f"{SUCCESS.name}{{{labels}}} {1.0 if record.poll_success else 0.0}\n",
        last_success,
        errors,
        f"{ROTATIONS.name}{{{labels}}} {record.rotations}.0\n",
        f'{THRESHOLD.name}{{{labels},level="warning"}} {_number(thresholds.warning)}\n'
        f'{THRESHOLD.name}{{{labels},level="critical"}} {_number(thresholds.critical)}\n',
        # A float is a time; None (never) and UNKNOWN leave the series out.
        f"{LAST_CALL.name}{{{labels}}} {_number(record.last_call)}\n"
        if isinstance(record.last_call, float)
        else "",
        # Unknown usage keeps an alert's severity, never usage lowers it: rules must tell
        # "never called" (an idle link) from "nobody said" (no data), which LAST_CALL cannot.
        ""
        if record.last_call is UNKNOWN
        else f"{NEVER_CALLED.name}{{{labels}}} {1.0 if record.last_call is None else 0.0}\n",
        # None: no listing said (a configured agent whose workspace's listings fail).
        ""
        if record.archived is None
        else f"{ARCHIVED.name}{{{labels}}} {1.0 if record.archived else 0.0}\n",
    )
    return tuple(part.encode() for part in parts)


class Run:
    """RUN_AGENTS consecutive agents' samples: for each family, their lines joined in one
    `bytes`, and each agent's length in it, so that one agent's lines can be replaced
    without rendering its neighbours again.

    The exposition is held once, in the runs: a scrape sends their blocks as they are. A
    poll that changes one agent copies its run's blocks of the families whose lines changed
    (some kilobytes), never the family whole.
    """

    __slots__ = ("blocks", "lengths")

    def __init__(self, rendered: Sequence[tuple[bytes, ...]]) -> None:
        self.blocks = [b"".join(map(operator.itemgetter(f), rendered)) for f in _FAMILIES]
        self.lengths = [array("I", [len(parts[f]) for parts in rendered]) for f in _FAMILIES]

    def lines(self) -> list[tuple[bytes, ...]]:
        """Each agent's lines, family by family, as render_agent made them."""
        per_family = []
        for block, lengths in zip(self.blocks, self.lengths, strict=True):
            view = memoryview(block)
            starts = itertools.accumulate(lengths, initial=0)
            per_family.append([bytes(view[a:b]) for a, b in itertools.pairwise(starts)])
        return list(zip(*per_family, strict=True))

    def replace(self, renderings: dict[int, tuple[bytes, ...]]) -> None:
        """New lines for some of the run's agents: their index in the run -> rendering."""
        order = sorted(renderings)
        for f in _FAMILIES:
            lengths = self.lengths[f]
            block = self.blocks[f]
            ends = list(itertools.accumulate(lengths))
            pieces: list[bytes | memoryview] = []
            taken = 0  # the block's bytes up to here are in `pieces`
            for i in order:
                new = renderings[i][f]
                end = ends[i]
                start = end - lengths[i]
                if block[start:end] == new:
                    continue  # this family's lines did not change: keep the block
                pieces.append(memoryview(block)[taken:start])
                pieces.append(new)
                lengths[i] = len(new)
                taken = end
            if pieces:
                pieces.append(memoryview(block)[taken:])
                # A new object: an answer still being sent keeps the one it was given.
                self.blocks[f] = b"".join(pieces)


@dataclass(frozen=True)
class Exposition:
    """One scrape's answer: the runs' blocks and the rest, joined only chunk by chunk."""

    pieces: list[bytes]
    length: int
    content_type: str

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes | memoryview]:
        batch: list[bytes] = []
        held = 0
        for piece in self.pieces:
            if len(piece) >= size:
                # A piece this large goes out in slices, never copied whole.
                if batch:
                    yield b"".join(batch)
                    batch.clear()
                    held = 0
                view = memoryview(piece)
                for start in range(0, len(piece), size):
                    yield view[start : start + size]
                continue
            if held + len(piece) > size:  # a chunk never grows past `size`
                yield b"".join(batch)
                batch.clear()
                held = 0
            batch.append(piece)
            held += len(piece)
        if batch:
            yield b"".join(batch)

    def body(self) -> bytes:
        return b"".join(self.chunks())


class AgentExposition:
    """The per-agent families, kept in runs of RUN_AGENTS agents (see Run), each agent's
    lines re-rendered only when its record or state changes (see monitor/peragent.py).

    Between polls nothing changes but the clock, so a scrape then checks each agent's
    record and state deadline and sends the kept blocks as they are.
    """

    def __init__(
        self,
        store: Store,
        settings: ConfigHolder,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        # Each agent's thresholds as its value: its lines live in the runs, not here.
        self._agents: PerAgent[Thresholds] = PerAgent(lambda _, __, thresholds: thresholds)
        self._runs: list[Run] = []
        self._keys: list[AgentKey] = []  # the agents the runs hold, in order

    def render(self, openmetrics: bool = False) -> list[bytes]:
        """The exposition's pieces, in order."""
        now = self._clock()
        settings = self._settings.current
        records = self._store.snapshot()
        changes = self._agents.refresh(records, now, settings)
        if changes:
            kept = self._agents.kept()
            if changes.same_agents and self._runs:
                self._replace(kept, changes.rebuilt)
            else:  # agents came, left or moved
                self._lay_out(kept, set(changes.rebuilt))
        pieces: list[bytes] = []
        for f, family in enumerate(AGENT_FAMILIES):
            pieces.append(family.header(openmetrics))
            pieces.extend(run.blocks[f] for run in self._runs)
        if settings.expose_relative:
            # Changes on every scrape, so never cached (and off by default).
            pieces.append(EXPIRES_IN.header(openmetrics))
            pieces.extend(
                f"{EXPIRES_IN.name}{{{_labels(r.key)}}} "
                f"{_number(r.observation.expires_at - now)}\n".encode()
                for r in records
                if r.observation is not None and r.observation.expires_at is not None
            )
        return pieces

    def _lay_out(self, kept: list[Kept[Thresholds]], rebuilt: set[int]) -> None:
        """Every run anew, in the agents' new order. An agent unchanged keeps its lines, taken
        from its old run, and an old run is let go as soon as its last agent is taken: a
        discovery that adds one agent to 10,000 neither renders the 10,000 again (150 ms on
        the event loop) nor holds the exposition twice."""
        old_runs: list[Run | None] = list(self._runs)
        self._runs = []
        where = {key: i for i, key in enumerate(self._keys)}
        sources = [
            None if position in rebuilt else where.get(k.record.key)
            for position, k in enumerate(kept)
        ]
        left = collections.Counter(s // RUN_AGENTS for s in sources if s is not None)
        lines: dict[int, list[tuple[bytes, ...]]] = {}  # an old run's, while it is read
        runs = []
        for first in range(0, len(kept), RUN_AGENTS):
            rendered = []
            for position in range(first, min(first + RUN_AGENTS, len(kept))):
                source = sources[position]
                if source is None:
                    k = kept[position]
                    rendered.append(render_agent(k.record, k.state, k.value))
                    continue
                number, index = divmod(source, RUN_AGENTS)
                run = old_runs[number]
                if number not in lines and run is not None:
                    lines[number] = run.lines()
                    old_runs[number] = None
                rendered.append(lines[number][index])
                left[number] -= 1
                if not left[number]:
                    del lines[number]
            runs.append(Run(rendered))
        self._runs = runs
        self._keys = [k.record.key for k in kept]

    def _replace(self, kept: list[Kept[Thresholds]], rebuilt: list[int]) -> None:
        for number, positions in itertools.groupby(rebuilt, lambda p: p // RUN_AGENTS):
            renderings = {}
            for position in positions:
                k = kept[position]
                renderings[position % RUN_AGENTS] = render_agent(k.record, k.state, k.value)
            self._runs[number].replace(renderings)


class Metrics:
    """Everything `/metrics` serves."""

    def __init__(
        self,
        store: Store,
        health: Health,
        settings: ConfigHolder,
        clock: Callable[[], float],
    ) -> None:
        self.agents = AgentExposition(store, settings, clock)
        # `_created` series double every counter for no use to an alert rule.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(MonitorCollector(store, health, settings))
        ProcessCollector(registry=self.registry)
        self.poll_duration = Histogram(
            "elevenlabs_link_monitor_poll_duration_seconds",
            "One API request's duration.",
            buckets=POLL_DURATION_BUCKETS,
            registry=self.registry,
        )

    def render(self, openmetrics: bool = False) -> Exposition:
        """Everything `/metrics` serves, in the text format or in OpenMetrics 1.0.0."""
        pieces = self.agents.render(openmetrics)
        if openmetrics:
            # Ends with the `# EOF` that OpenMetrics requires, after every family.
            pieces.append(generate_openmetrics(self.registry))  # type: ignore[no-untyped-call]
            content_type = OPENMETRICS_CONTENT_TYPE
        else:
            pieces.append(generate_latest(self.registry))
            content_type = CONTENT_TYPE
        length = sum(map(len, pieces))
        return Exposition(pieces, length, content_type)
