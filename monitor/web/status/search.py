"""The search index, the parsing of a query (`state`, `q`), filters and pages."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from urllib.parse import urlencode

from monitor.evaluate import STATES, State
from monitor.peragent import PerAgent, ThresholdsSource
from monitor.store import AgentRecord
from monitor.web.status.figures import (
    Evaluated,
    Row,
    agent_row,
    archived_key,
    is_idle,
    last_call_key,
    sort_key,
)
from monitor.web.status.text import LABELS

PAGE_SIZE = 100  # rows per page: the page stays light at 10,000 agents
QUERY_LIMIT = 200  # characters of `q` that count
MAX_TERMS = 8  # distinct words of `q` that count: each one is a pass over the agents
_STATE_WORDS: Mapping[State, str] = {state: f"{state.value} {LABELS[state]}" for state in STATES}
# `?sort=`: most urgent first (the default), least used first, archived first.
SORTS: Mapping[str, Callable[[Evaluated], Any]] = {
    "state": sort_key,
    "last_call": last_call_key,
    "archived": archived_key,
}


class BadQuery(ValueError):
    pass


def requested_states(values: Iterable[str], *, strict: bool) -> set[State] | None:
    """`?state=a&state=b` or `?state=a,b`; None when no state is asked for (all of them).

    An empty value (`?state=`) asks for none; an unknown one is an error when `strict`.
    """
    chosen: set[State] | None = None
    for value in values:
        chosen = chosen if chosen is not None else set()
        for raw in value.split(","):
            part = raw.strip()
            if not part:
                continue
            try:
                chosen.add(State(part))
            except ValueError:
                if strict:
                    known = ", ".join(s.value for s in STATES)
                    raise BadQuery(f"unknown state {part!r}: use one of {known}") from None
    return chosen


def search_text(record: AgentRecord, state: State) -> str:
    """What the filter box matches: workspace, name, id, state and the last error."""
    parts = (
        record.key.workspace,
        record.name,
        record.key.agent_id,
        _STATE_WORDS[state],
        record.last_error or "",
        record.last_error_detail,
    )
    return " ".join(parts).lower()


def search_terms(query: str) -> list[str]:
    """The words of `q` that count: its first QUERY_LIMIT characters, each word once, a word
    found inside another word left out (it cannot narrow the match), then the first
    MAX_TERMS: what a request costs does not grow with what a client types."""
    words = list(dict.fromkeys(query[:QUERY_LIMIT].lower().split()))
    narrowing = [w for w in words if not any(w != other and w in other for other in words)]
    return narrowing[:MAX_TERMS]


class _Entry:
    """An agent's search text and sort key, each built on first use: the status figures,
    which only count, never pay for either."""

    __slots__ = ("_key", "_text", "record", "state")

    def __init__(self, record: AgentRecord, state: State) -> None:
        self.record = record
        self.state = state
        self._text: str | None = None
        self._key: tuple[int, float, str, str, str] | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = search_text(self.record, self.state)
        return self._text

    @property
    def key(self) -> tuple[int, float, str, str, str]:
        if self._key is None:
            self._key = sort_key((self.record, self.state))
        return self._key


_by_key = attrgetter("key")


class Index:
    """Each agent's state, search text and sort key, kept per agent (monitor/peragent.py).

    An entry is rebuilt only when its agent's record (a poll, a rename) or state (time
    passing a threshold) changes: a filtered request costs one pass over the agents,
    however many words its query has.
    """

    def __init__(self) -> None:
        self._kept: PerAgent[_Entry] = PerAgent(lambda record, state, _: _Entry(record, state))

    def refresh(
        self, records: Iterable[AgentRecord], now: float, settings: ThresholdsSource
    ) -> list[Evaluated]:
        """Every agent with its state at `now`, by its own thresholds; agents no longer
        watched are dropped."""
        self._kept.refresh(records, now, settings)
        return [(kept.record, kept.state) for kept in self._kept.kept()]

    def entries(self) -> list[_Entry]:
        """Every agent's entry, as of the last refresh."""
        return [kept.value for kept in self._kept.kept()]


def chosen_entries(
    entries: Iterable[_Entry],
    *,
    terms: Sequence[str] = (),
    states: set[State] | None = None,
    workspaces: set[str] | None = None,
    idle: Idle | None = None,
    archived: bool = False,
    sort: str = "state",
) -> list[_Entry]:
    """The entries a filter lets through, soonest to die first (or as `sort` says); with
    `idle`, only the idle agents; with `archived`, only the archived ones."""
    chosen = list(entries)
    if states is not None:
        chosen = [e for e in chosen if e.state in states]
    if workspaces:
        chosen = [e for e in chosen if e.record.key.workspace in workspaces]
    if idle is not None:
        chosen = [e for e in chosen if is_idle(e.record, idle.now, idle.window)]
    if archived:
        chosen = [e for e in chosen if e.record.archived]
    for term in terms:  # at most MAX_TERMS passes, each narrower than the last
        chosen = [e for e in chosen if term in e.text]
    order = SORTS.get(sort)
    if order is None or order is sort_key:
        chosen.sort(key=_by_key)
    else:
        chosen.sort(key=lambda e: order((e.record, e.state)))
    return chosen


@dataclass(frozen=True, slots=True)
class Idle:
    """`?idle=1`: agents not called within `window` seconds before `now`, or never."""

    now: float
    window: float


def flag(value: str | None) -> bool:
    """`?idle=1`, `?archived=1` (also `true`, `yes`, `on`): anything else is off."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def page_url(
    query: str = "",
    states: Iterable[str] | None = None,
    page: int = 1,
    *,
    idle: bool = False,
    archived: bool = False,
    sort: str = "state",
) -> str:
    """The page's URL for a filter and a page number, as the script writes it."""
    params: list[tuple[str, str]] = []
    if states is not None:
        chosen = list(states)
        params += [("state", s) for s in chosen] if chosen else [("state", "")]
    if query:
        params.append(("q", query))
    if idle:
        params.append(("idle", "1"))
    if archived:
        params.append(("archived", "1"))
    if sort != "state":
        params.append(("sort", sort))
    if page > 1:
        params.append(("page", str(page)))
    return "/?" + urlencode(params) if params else "/"


@dataclass(frozen=True)
class View:
    """One page of the agents that match a filter, in order, as rows."""

    rows: list[Row]
    total: int  # agents watched
    matching: int  # agents the filter lets through
    page: int
    pages: int
    first: int  # the position of the first row shown, from 1
    previous_url: str | None
    next_url: str | None


def select(
    index: Index,
    now: float,
    *,
    query: str = "",
    states: set[State] | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    idle: Idle | None = None,
    archived: bool = False,
    sort: str = "state",
) -> View:
    """Filter, sort, then build rows for one page only: 10,000 agents cost a sort of keys."""
    entries = index.entries()
    sort = sort if sort in SORTS else "state"
    chosen = chosen_entries(
        entries,
        terms=search_terms(query),
        states=states,
        idle=idle,
        archived=archived,
        sort=sort,
    )
    pages = max(1, -(-len(chosen) // page_size))
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    in_url = None if states is None else [s.value for s in STATES if s in states]
    url = functools.partial(
        page_url, query, in_url, idle=idle is not None, archived=archived, sort=sort
    )
    return View(
        rows=[agent_row(e.record, e.state, now) for e in chosen[start : start + page_size]],
        total=len(entries),
        matching=len(chosen),
        page=page,
        pages=pages,
        first=start + 1,
        previous_url=url(page - 1) if page > 1 else None,
        next_url=url(page + 1) if page < pages else None,
    )
