"""The status page (`/`), its partial (`/partial`) and its JSON API (`/api/v1/...`), read from
the state store.

Everything here is read-only: GET and HEAD only, and a strict Content-Security-Policy (the
script and the stylesheet are files under `/static/`, never inline). The HTML comes from
autoescaped Jinja2 templates (`monitor/web/templates/`): an agent's name is whatever somebody
typed in the ElevenLabs console. The server renders every row and figure; the script only
fetches the partial and swaps it in. The schema of the JSON API is documented in
`docs/status-api.md`; fields are only ever added to version 1.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from monitor import __version__
from monitor.config.schema import Config
from monitor.evaluate import ALERTING, STATES, Kind, State, Thresholds, evaluate
from monitor.model import AgentKey, Health, Reason, iso
from monitor.store import AgentRecord, Store

if TYPE_CHECKING:
    import jinja2
    from starlette.templating import Jinja2Templates

SCHEMA_VERSION = 1
PARTIAL_PATH = "/partial"
# What the page's script fetches on every refresh: one request.
REFRESH_PATHS = (PARTIAL_PATH,)
STATIC_PATH = "/static"
STATIC_FILES = ("app.js", "app.css", "favicon.svg")
PAGE_SIZE = 100  # rows per page: the page stays light at 10,000 agents
QUERY_LIMIT = 200  # characters of `q` that count
MAX_TERMS = 8  # distinct words of `q` that count: each one is a pass over the agents
API_PAGE_SIZE = 500  # rows per answer of /api/v1/agents unless `limit` says otherwise
API_MAX_PAGE_SIZE = 1000

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: Mapping[str, str] = {
    "cache-control": "no-store",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# A fingerprinted file never changes under its name: caches may keep it for a year.
STATIC_HEADERS: Mapping[str, str] = {
    **HEADERS,
    "cache-control": "public, max-age=31536000, immutable",
}

# The text beside every state's colour: colour alone is never the only signal.
LABELS: Mapping[State, str] = {
    State.EXPIRED: "Expired",
    State.MISSING: "Missing",
    State.NOT_FOUND: "Not found",
    State.CRITICAL: "Critical",
    State.WARNING: "Warning",
    State.UNKNOWN: "Unknown",
    State.OK: "OK",
}
DESCRIPTIONS: Mapping[State, str] = {
    State.EXPIRED: "the link's token has expired",
    State.MISSING: "the agent has no shareable link",
    State.NOT_FOUND: "the API does not know the agent",
    State.CRITICAL: "expires within the critical threshold",
    State.WARNING: "expires within the warning threshold",
    State.UNKNOWN: "no successful poll yet",
    State.OK: "far from expiry, or no expiry",
}
_ANSWERS: Mapping[Kind, str] = {
    Kind.LINK: "link",
    Kind.MISSING: "missing",
    Kind.NOT_FOUND: "not_found",
}
_RANK: Mapping[State, int] = {state: rank for rank, state in enumerate(STATES)}
_STATE_WORDS: Mapping[State, str] = {state: f"{state.value} {LABELS[state]}" for state in STATES}
# Refresh the page every few seconds, but not much faster than the data can change.
REFRESH_MIN = 2.0
REFRESH_MAX = 5.0
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))

Row = dict[str, Any]
Evaluated = tuple[AgentRecord, State]


# --- the figures, shared by the page and the API ----------------------------------------------


def evaluated(
    records: Iterable[AgentRecord], now: float, thresholds: Thresholds
) -> list[Evaluated]:
    """Every record with its state at `now`, evaluated once per request."""
    return [(r, evaluate(r.observation, now, thresholds)) for r in records]


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity, and no calendar shows them: such a time is unknown."""
    return value if value is not None and math.isfinite(value) else None


def _whole(value: float | None) -> int | None:
    return math.floor(value) if value is not None and math.isfinite(value) else None


def _age(value: float | None, now: float) -> int | None:
    return None if value is None else _whole(max(0.0, now - value))


def agent_row(record: AgentRecord, state: State, now: float) -> Row:
    """One agent as the API shows it: what is known, never a token."""
    observation = record.observation
    expires = _finite(observation.expires_at if observation is not None else None)
    last_success = _finite(record.last_success)
    return {
        "workspace": record.key.workspace,
        "agent_id": record.key.agent_id,
        "agent_name": record.name,
        "state": state.value,
        "state_label": LABELS[state],
        "answer": _ANSWERS[observation.kind] if observation is not None else None,
        "expires_at": iso(expires) if expires is not None else None,
        "expires_at_unix": expires,
        "seconds_left": _whole(expires - now) if expires is not None else None,
        "polled": record.polled,
        "last_poll_ok": record.poll_success,
        "last_success_at": iso(last_success) if last_success is not None else None,
        "last_success_unix": last_success,
        "last_success_age_seconds": _age(last_success, now),
        "last_error": record.last_error.value if record.last_error is not None else None,
        "last_error_detail": record.last_error_detail or None,
    }


def sort_key(item: Evaluated) -> tuple[int, float, str, str, str]:
    """Soonest to die first: by state (most urgent first), then by expiry."""
    record, state = item
    observation = record.observation
    expires = _finite(observation.expires_at if observation is not None else None)
    return (
        _RANK[state],
        expires if expires is not None else math.inf,
        record.key.workspace,
        record.name.casefold(),
        record.key.agent_id,
    )


def stale_after(config: Config) -> float:
    """How old the last full cycle may get before the page calls the knowledge stale."""
    return 2 * config.poll.interval + config.poll.jitter + 30


@dataclass
class _Reach:
    agents: int = 0
    polled: int = 0
    answered: int = 0
    errors: dict[Reason, int] = field(default_factory=dict)


def status_figures(
    items: Sequence[Evaluated], health: Health, config: Config, now: float, ready: bool
) -> dict[str, Any]:
    """The header: the monitor's own health and a count per state, in one pass over the
    agents (no row is built, nothing is sorted)."""
    by_state = Counter(state for _, state in items)
    counts = {s.value: by_state[s] for s in STATES}
    reach: dict[str, _Reach] = {w.name: _Reach() for w in config.resolved_workspaces()}
    configured = len(reach)
    not_found = Reason.NOT_FOUND
    for record, _ in items:
        workspace = record.key.workspace
        tally = reach.get(workspace)
        if tally is None:
            tally = reach[workspace] = _Reach()
        tally.agents += 1
        if not record.polled:
            continue
        tally.polled += 1
        # A 404 for an agent is an answer (the API is up, the agent is gone); a timeout, a
        # 5xx, a 401 or a 429 is not.
        error = record.last_error
        if record.poll_success or error is not_found:
            tally.answered += 1
        if error is not None and not record.poll_success:
            tally.errors[error] = tally.errors.get(error, 0) + 1
    names = list(reach)
    names = names[:configured] + sorted(names[configured:])
    last_cycle = _finite(health.last_cycle)
    reload_at = _finite(health.config_reload_at)
    limit = stale_after(config)
    if last_cycle is not None:
        stale = now - last_cycle > limit
    else:  # no cycle has finished since start (the reload time is set at start, too)
        stale = reload_at is not None and now - reload_at > limit
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "generated_at_unix": now,
        "version": __version__,
        "agents": len(items),
        "ready": ready,
        "states": counts,
        "alerting": sum(counts[s.value] for s in ALERTING),
        "last_cycle_at": iso(last_cycle) if last_cycle is not None else None,
        "last_cycle_unix": last_cycle,
        "last_cycle_age_seconds": _age(last_cycle, now),
        "poll_interval_seconds": config.poll.interval,
        "stale_after_seconds": limit,
        "stale": stale,
        "config_reload": {
            "ok": health.config_reload_ok,
            "last_success_at": iso(reload_at) if reload_at is not None else None,
            "last_success_age_seconds": _age(reload_at, now),
        },
        "thresholds": {
            "warning_seconds": config.thresholds.warning,
            "critical_seconds": config.thresholds.critical,
        },
        "workspaces": [_reachability(name, reach[name]) for name in names],
    }


def _reachability(name: str, tally: _Reach) -> dict[str, Any]:
    if not tally.polled:
        reachability = "pending"
    elif tally.answered == tally.polled:
        reachability = "ok"
    elif not tally.answered:
        reachability = "unreachable"
    else:
        reachability = "degraded"
    return {
        "name": name,
        "agents": tally.agents,
        "polled": tally.polled,
        "answered": tally.answered,
        "reachability": reachability,
        "last_errors": {str(k): v for k, v in sorted(tally.errors.items())},
    }


def refresh_seconds(config: Config) -> float:
    return min(REFRESH_MAX, max(REFRESH_MIN, config.poll.interval))


# --- filters and pages ------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class _Entry:
    record: AgentRecord
    state: State
    text: str
    key: tuple[int, float, str, str, str]


_by_key = attrgetter("key")


class Index:
    """Each agent's search text and sort key, built once per record and state.

    Records are immutable and replaced whole, so an entry is rebuilt only when its agent's
    record (a poll, a rename) or state (time passing a threshold) changes: a filtered
    request costs one pass over the agents, however many words its query has.
    """

    def __init__(self) -> None:
        self._entries: dict[AgentKey, _Entry] = {}

    def entries(self, items: Iterable[Evaluated]) -> list[_Entry]:
        old = self._entries
        new: dict[AgentKey, _Entry] = {}
        for item in items:
            record, state = item
            entry = old.get(record.key)
            if entry is None or entry.record is not record or entry.state is not state:
                entry = _Entry(record, state, search_text(record, state), sort_key(item))
            new[record.key] = entry
        self._entries = new  # agents no longer watched are dropped
        return list(new.values())


def chosen_entries(
    entries: Iterable[_Entry],
    *,
    terms: Sequence[str] = (),
    states: set[State] | None = None,
    workspaces: set[str] | None = None,
) -> list[_Entry]:
    """The entries a filter lets through, soonest to die first."""
    chosen = list(entries)
    if states is not None:
        chosen = [e for e in chosen if e.state in states]
    if workspaces:
        chosen = [e for e in chosen if e.record.key.workspace in workspaces]
    for term in terms:  # at most MAX_TERMS passes, each narrower than the last
        chosen = [e for e in chosen if term in e.text]
    chosen.sort(key=_by_key)
    return chosen


def page_url(query: str = "", states: Iterable[str] | None = None, page: int = 1) -> str:
    """The page's URL for a filter and a page number, as the script writes it."""
    params: list[tuple[str, str]] = []
    if states is not None:
        chosen = list(states)
        params += [("state", s) for s in chosen] if chosen else [("state", "")]
    if query:
        params.append(("q", query))
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
    items: Sequence[Evaluated],
    now: float,
    *,
    query: str = "",
    states: set[State] | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    index: Index | None = None,
) -> View:
    """Filter, sort, then build rows for one page only: 10,000 agents cost a sort of keys.

    `index` keeps search texts and sort keys from one request to the next."""
    entries = (index or Index()).entries(items)
    chosen = chosen_entries(entries, terms=search_terms(query), states=states)
    pages = max(1, -(-len(chosen) // page_size))
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    in_url = None if states is None else [s.value for s in STATES if s in states]
    return View(
        rows=[agent_row(e.record, e.state, now) for e in chosen[start : start + page_size]],
        total=len(items),
        matching=len(chosen),
        page=page,
        pages=pages,
        first=start + 1,
        previous_url=page_url(query, in_url, page - 1) if page > 1 else None,
        next_url=page_url(query, in_url, page + 1) if page < pages else None,
    )


# --- words for people (the only place they are written: the templates use them) --------------


def span(seconds: float) -> str:
    """`3 d 4 h`, `2 h`, `4 m 10 s`, `12 s`: the two largest units, the second left out at 0.

    Total: any float gives words, never an error.
    """
    if math.isnan(seconds):
        return "an unknown time"
    if math.isinf(seconds):
        return "an unbounded time"
    left = int(abs(seconds))
    for index, (unit, size) in enumerate(_UNITS):
        if left >= size or unit == "s":
            text = f"{left // size} {unit}"
            if index + 1 < len(_UNITS):
                small_unit, small_size = _UNITS[index + 1]
                small = (left % size) // small_size
                if small:
                    text += f" {small} {small_unit}"
            return text
    raise AssertionError("unreachable")  # pragma: no cover


def ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{span(seconds)} ago"


def time_left(row: Row) -> str:
    left = row["seconds_left"]
    if left is None:
        return {
            "link": "never expires",
            "missing": "no shareable link",
            "not_found": "agent not found",
        }.get(row["answer"] or "", "not known yet")
    if left <= 0:
        return "expired just now" if left > -1 else f"expired {span(left)} ago"
    return f"in {span(left)}"


def when(timestamp: float) -> str:
    """`2025-06-01 14:03 UTC`; a time no calendar shows is written as its number."""
    text = iso(timestamp)
    return f"{text[:10]} {text[11:16]} UTC" if _calendar(text) else text


def time_of_day(timestamp: float) -> str:
    """`14:03:05 UTC`; a time no calendar shows is written as its number."""
    text = iso(timestamp)
    return f"{text[11:19]} UTC" if _calendar(text) else text


def _calendar(text: str) -> bool:
    return len(text) == 20 and text[10] == "T" and text.endswith("Z")


def error_text(row: Row) -> str:
    if row["last_error"] is None:
        return ""
    detail = row["last_error_detail"]
    return f"{row['last_error']}: {detail}" if detail else str(row["last_error"])


def banners(status: Mapping[str, Any]) -> list[str]:
    """Plain sentences about what is wrong with the monitor itself."""
    found = []
    if status["stale"]:
        age = status["last_cycle_age_seconds"]
        since = (
            f"the last full poll cycle finished {ago(age)}"
            if age is not None
            else "no full poll cycle has finished yet"
        )
        found.append(
            f"The monitor's knowledge is stale: {since}, but one is expected every "
            f"{span(status['poll_interval_seconds'])}."
        )
    if not status["config_reload"]["ok"]:
        found.append(
            "The last config reload failed: the monitor runs on the previous config "
            "(see its log for the problems)."
        )
    for workspace in status["workspaces"]:
        if workspace["reachability"] == "unreachable":
            reasons = ", ".join(f"{v} {k}" for k, v in workspace["last_errors"].items())
            found.append(
                f"The API of workspace {workspace['name']} cannot be reached: the last poll "
                f"of all {workspace['polled']} agents failed ({reasons})."
            )
    return found


def reachability_text(workspace: Mapping[str, Any]) -> str:
    if workspace["reachability"] == "pending":
        return "not polled yet"
    return f"{workspace['answered']}/{workspace['polled']} answering"


def shown_text(view: View) -> str:
    if view.matching <= len(view.rows):
        return f"Showing {view.matching:,} of {view.total:,} agents"
    last = view.first + len(view.rows) - 1
    if view.matching == view.total:
        return f"Showing {view.first:,} to {last:,} of {view.total:,} agents"
    return f"Showing {view.first:,} to {last:,} of {view.matching:,} matching, of {view.total:,} agents"


# --- templates and static files ---------------------------------------------------------------


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=ago,
        banners=banners,
        clock=time_of_day,
        error_text=error_text,
        reachability=reachability_text,
        shown=shown_text,
        time_left=time_left,
        when=when,
    )
    env.globals.update(labels=LABELS, descriptions=DESCRIPTIONS, states=STATES)
    return env


def _templates() -> Jinja2Templates:
    # Jinja and its compiled templates cost about 3 MiB: not paid by a daemon that is only
    # scraped, nor before somebody opens the page.
    from starlette.templating import Jinja2Templates

    return Jinja2Templates(env=_environment())


def fingerprinted(name: str, body: bytes) -> str:
    """`app.js` -> `app.3f2a9c1b0d4e.js`: a new name whenever the content changes."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}{dot}{suffix}"


class FingerprintedFiles(StaticFiles):
    """The package's static files, served only under their content-hashed names."""

    def __init__(self) -> None:
        super().__init__(packages=[("monitor.web", "static")])
        folder = importlib.resources.files("monitor.web").joinpath("static")
        self.urls: dict[str, str] = {}  # real name -> URL
        self._names: dict[str, str] = {}  # fingerprinted name -> real name
        for name in STATIC_FILES:
            hashed = fingerprinted(name, folder.joinpath(name).read_bytes())
            self.urls[name] = f"{STATIC_PATH}/{hashed}"
            self._names[hashed] = name

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return Response("method not allowed\n", 405, headers={**HEADERS, "allow": "GET, HEAD"})
        name = self._names.get(path)
        if name is None:
            return Response("not found\n", 404, headers=dict(HEADERS))
        response = await super().get_response(name, scope)
        response.headers.update(STATIC_HEADERS)
        return response


# --- routes -----------------------------------------------------------------------------------


def status_routes(
    store: Store,
    health: Health,
    config: Callable[[], Config],
    clock: Callable[[], float],
    ready: Callable[[], bool] | None = None,
) -> list[BaseRoute]:
    """Routes of the status page, its partial, its static files and the JSON API.

    `ready` is what `/readyz` answers by; by default, the store's own readiness.
    """
    is_ready = ready if ready is not None else (lambda: store.ready)
    templates = functools.cache(_templates)
    files = FingerprintedFiles()
    index = Index()

    def current() -> tuple[float, Config, list[Evaluated]]:
        now = clock()
        settings = config()
        thresholds = Thresholds(settings.thresholds.warning, settings.thresholds.critical)
        return now, settings, evaluated(store.snapshot(), now, thresholds)

    def render(request: Request, template: str) -> Response:
        now, settings, items = current()
        params = request.query_params
        states = requested_states(params.getlist("state"), strict=False)
        query = params.get("q", "")[:QUERY_LIMIT]
        try:
            page = int(params.get("page", "1"))
        except ValueError:
            page = 1
        context = {
            "status": status_figures(items, health, settings, now, is_ready()),
            "view": select(items, now, query=query, states=states, page=page, index=index),
            "query": query,
            "chosen": states,
            "refresh_ms": int(refresh_seconds(settings) * 1000),
            "partial_path": PARTIAL_PATH,
            "static": files.urls,
        }
        return templates().TemplateResponse(request, template, context, headers=dict(HEADERS))

    async def page(request: Request) -> Response:
        return render(request, "page.html")

    async def partial(request: Request) -> Response:
        return render(request, "partial.html")

    async def agents(request: Request) -> Response:
        params = request.query_params
        try:
            states = requested_states(params.getlist("state"), strict=True)
            limit = _count(params, "limit", API_PAGE_SIZE, 1, API_MAX_PAGE_SIZE)
            offset = _count(params, "offset", 0, 0, None)
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        now, _, items = current()
        chosen = chosen_entries(
            index.entries(items),
            terms=search_terms(params.get("q", "")),
            states=states,
            workspaces={w for w in params.getlist("workspace") if w},
        )
        shown = chosen[offset : offset + limit]
        following = offset + len(shown)
        return _json(
            {
                "schema_version": SCHEMA_VERSION,
                "generated_at": iso(now),
                "generated_at_unix": now,
                "total": len(items),
                "matching": len(chosen),
                "offset": offset,
                "limit": limit,
                "next": _next_url(request, following, limit) if following < len(chosen) else None,
                "agents": [agent_row(e.record, e.state, now) for e in shown],
            }
        )

    async def status_endpoint(_: Request) -> Response:
        now, settings, items = current()
        return _json(status_figures(items, health, settings, now, is_ready()))

    read_only = ["GET", "HEAD"]
    return [
        Route("/", page, methods=read_only),
        Route(PARTIAL_PATH, partial, methods=read_only),
        Route("/api/v1/agents", agents, methods=read_only),
        Route("/api/v1/status", status_endpoint, methods=read_only),
        Mount(STATIC_PATH, app=files),
    ]


def _count(params: Mapping[str, str], name: str, default: int, least: int, most: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    # Digits only: int() would also take " 5", "+5" and "5_0".
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else least - 1
    if value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f"from {least}"
        raise BadQuery(f"{name} must be a whole number {bound}, not {raw[:40]!r}")
    return value


def _next_url(request: Request, offset: int, limit: int) -> str:
    """The same query with the next offset: a client follows `next` until it is null."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
    return (
        f"{request.url.path}?{urlencode([*params, ('limit', str(limit)), ('offset', str(offset))])}"
    )


def _json(data: Mapping[str, Any], status_code: int = 200) -> Response:
    return JSONResponse(data, status_code=status_code, headers=dict(HEADERS))
