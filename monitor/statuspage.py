"""The status page (`/`) and its JSON API (`/api/v1/...`), read from the state store.

Everything here is read-only: GET and HEAD only, `Cache-Control: no-store`, and a strict
Content-Security-Policy (the script and the stylesheet are served from `/assets/`, never
inline). Every value that reaches the HTML is escaped: an agent's name is whatever
somebody typed in the ElevenLabs console. The schema of the JSON API is documented in
`docs/status-api.md`; fields are only ever added to version 1.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from monitor import __version__
from monitor.config import Config
from monitor.evaluate import ALERTING, STATES, Kind, State, Thresholds, evaluate
from monitor.model import Health, Reason, iso
from monitor.statuspage_assets import APP_CSS, APP_JS, FAVICON_SVG
from monitor.store import AgentRecord, Store

SCHEMA_VERSION = 1

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
# Refresh the page every few seconds, but not much faster than the data can change.
REFRESH_MIN = 2.0
REFRESH_MAX = 5.0
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))

Row = dict[str, Any]


# --- the figures, shared by the page and the API ----------------------------------------------


def agent_row(record: AgentRecord, now: float, thresholds: Thresholds) -> Row:
    """One agent as the API shows it: what is known, never a token."""
    observation = record.observation
    state = evaluate(observation, now, thresholds)
    expires = observation.expires_at if observation is not None else None
    last_success = record.last_success
    return {
        "workspace": record.key.workspace,
        "agent_id": record.key.agent_id,
        "agent_name": record.name,
        "state": state.value,
        "state_label": LABELS[state],
        "answer": _ANSWERS[observation.kind] if observation is not None else None,
        "expires_at": iso(expires) if expires is not None else None,
        "expires_at_unix": expires,
        "seconds_left": math.floor(expires - now) if expires is not None else None,
        "polled": record.polled,
        "last_poll_ok": record.poll_success,
        "last_success_at": iso(last_success) if last_success is not None else None,
        "last_success_unix": last_success,
        "last_success_age_seconds": (
            max(0, math.floor(now - last_success)) if last_success is not None else None
        ),
        "last_error": record.last_error.value if record.last_error is not None else None,
        "last_error_detail": record.last_error_detail or None,
    }


def sort_key(row: Row) -> tuple[int, float, str, str, str]:
    """Soonest to die first: by state (most urgent first), then by expiry."""
    expires = row["expires_at_unix"]
    return (
        STATES.index(State(row["state"])),
        expires if expires is not None else math.inf,
        row["workspace"],
        row["agent_name"].casefold(),
        row["agent_id"],
    )


def agent_rows(records: Iterable[AgentRecord], now: float, thresholds: Thresholds) -> list[Row]:
    return sorted((agent_row(r, now, thresholds) for r in records), key=sort_key)


def stale_after(config: Config) -> float:
    """How old the last full cycle may get before the page calls the knowledge stale."""
    return 2 * config.poll.interval + config.poll.jitter + 30


def status_figures(
    records: Sequence[AgentRecord],
    rows: Sequence[Row],
    health: Health,
    config: Config,
    now: float,
    *,
    ready: bool | None = None,
) -> dict[str, Any]:
    """The header: the monitor's own health and a count per state."""
    counts = dict.fromkeys((s.value for s in STATES), 0)
    for row in rows:
        counts[row["state"]] += 1
    last_cycle = health.last_cycle
    limit = stale_after(config)
    if last_cycle is not None:
        stale = now - last_cycle > limit
    else:  # no cycle has finished since start (the reload time is set at start, too)
        started = health.config_reload_at
        stale = started is not None and now - started > limit
    reload_at = health.config_reload_at
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "generated_at_unix": now,
        "version": __version__,
        "agents": len(records),
        # The daemon's /readyz answer when given, so that both say the same.
        "ready": all(r.polled for r in records) if ready is None else ready,
        "states": counts,
        "alerting": sum(counts[s.value] for s in ALERTING),
        "last_cycle_at": iso(last_cycle) if last_cycle is not None else None,
        "last_cycle_unix": last_cycle,
        "last_cycle_age_seconds": (
            max(0, math.floor(now - last_cycle)) if last_cycle is not None else None
        ),
        "poll_interval_seconds": config.poll.interval,
        "stale_after_seconds": limit,
        "stale": stale,
        "config_reload": {
            "ok": health.config_reload_ok,
            "last_success_at": iso(reload_at) if reload_at is not None else None,
            "last_success_age_seconds": (
                max(0, math.floor(now - reload_at)) if reload_at is not None else None
            ),
        },
        "thresholds": {
            "warning_seconds": config.thresholds.warning,
            "critical_seconds": config.thresholds.critical,
        },
        "workspaces": _reachability(records, config),
    }


def _reachability(records: Sequence[AgentRecord], config: Config) -> list[dict[str, Any]]:
    """Per workspace: of the agents polled, how many got an answer from the API at all.

    A 404 for an agent is an answer (the API is up, the agent is gone); a timeout, a 5xx,
    a 401 or a 429 is not.
    """
    names = [w.name for w in config.resolved_workspaces()]
    names += sorted({r.key.workspace for r in records} - set(names))
    found = []
    for name in names:
        mine = [r for r in records if r.key.workspace == name]
        polled = [r for r in mine if r.polled]
        answered = [r for r in polled if r.poll_success or r.last_error is Reason.NOT_FOUND]
        errors: dict[str, int] = {}
        for record in polled:
            if record.last_error is not None and not record.poll_success:
                errors[record.last_error.value] = errors.get(record.last_error.value, 0) + 1
        if not polled:
            reachability = "pending"
        elif len(answered) == len(polled):
            reachability = "ok"
        elif not answered:
            reachability = "unreachable"
        else:
            reachability = "degraded"
        found.append(
            {
                "name": name,
                "agents": len(mine),
                "polled": len(polled),
                "answered": len(answered),
                "reachability": reachability,
                "last_errors": dict(sorted(errors.items())),
            }
        )
    return found


def refresh_seconds(config: Config) -> float:
    return min(REFRESH_MAX, max(REFRESH_MIN, config.poll.interval))


# --- filters ----------------------------------------------------------------------------------


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


def search_text(row: Row) -> str:
    """What the filter box matches (the script builds the very same string)."""
    parts = (
        row["workspace"],
        row["agent_name"],
        row["agent_id"],
        row["state"],
        row["state_label"],
        row["last_error"] or "",
        row["last_error_detail"] or "",
    )
    return " ".join(parts).lower()


def matches(row: Row, terms: Sequence[str], states: set[State] | None) -> bool:
    if states is not None and State(row["state"]) not in states:
        return False
    text = search_text(row)
    return all(term in text for term in terms)


def search_terms(query: str) -> list[str]:
    return query.lower().split()


# --- words for people -------------------------------------------------------------------------


def span(seconds: float) -> str:
    """`3 d 4 h`, `2 h`, `4 m 10 s`, `12 s`: the two largest units, the second left out at 0."""
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


def when(timestamp_iso: str) -> str:
    """`2025-06-01T14:03:05Z` -> `2025-06-01 14:03 UTC`."""
    return f"{timestamp_iso[:10]} {timestamp_iso[11:16]} UTC"


def error_text(row: Row) -> str:
    if row["last_error"] is None:
        return ""
    detail = row["last_error_detail"]
    return f"{row['last_error']}: {detail}" if detail else row["last_error"]


# --- HTML -------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_row(row: Row, hidden: bool) -> str:
    state = row["state"]
    expires = (
        f'<time datetime="{_e(row["expires_at"])}">{_e(when(row["expires_at"]))}</time>'
        if row["expires_at"]
        else ""
    )
    success = (
        f'<time datetime="{_e(row["last_success_at"])}">{_e(when(row["last_success_at"]))}</time>'
        f'<span class="sub">{_e(ago(row["last_success_age_seconds"]))}</span>'
        if row["last_success_at"]
        else '<span class="sub">never</span>'
    )
    error = error_text(row)
    return (
        f'<tr class="s-{_e(state)}" data-state="{_e(state)}" data-search="{_e(search_text(row))}"'
        f"{' hidden' if hidden else ''}>"
        f'<td class="c-state" data-label="State"><span class="badge s-{_e(state)}"'
        f' title="{_e(DESCRIPTIONS[State(state)])}">{_e(row["state_label"])}</span></td>'
        f'<td class="c-ws" data-label="Workspace">{_e(row["workspace"])}</td>'
        f'<td class="c-name" data-label="Name">{_e(row["agent_name"])}</td>'
        f'<td class="c-id" data-label="Agent ID"><code>{_e(row["agent_id"])}</code></td>'
        f'<td class="c-exp" data-label="Expires">{expires}'
        f'<span class="sub">{_e(time_left(row))}</span></td>'
        f'<td class="c-poll" data-label="Last successful poll">{success}</td>'
        f'<td class="c-err" data-label="Last error">{_e(error)}</td>'
        "</tr>"
    )


def _banners(status: Mapping[str, Any]) -> list[str]:
    """Plain sentences about what is wrong with the monitor itself (the script repeats them)."""
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


def _reachability_text(workspace: Mapping[str, Any]) -> str:
    if workspace["reachability"] == "pending":
        return "not polled yet"
    return f"{workspace['answered']}/{workspace['polled']} answering"


def render_page(
    rows: Sequence[Row],
    status: Mapping[str, Any],
    *,
    query: str,
    states: set[State] | None,
    refresh: float,
) -> str:
    terms = search_terms(query)
    shown = [matches(r, terms, states) for r in rows]
    counts = status["states"]
    tiles = "".join(
        f'<label class="tile s-{_e(s.value)}" title="{_e(DESCRIPTIONS[s])}">'
        f'<input type="checkbox" name="state" value="{_e(s.value)}"'
        f"{' checked' if states is None or s in states else ''}>"
        f'<span class="dot"></span><span class="name">{_e(LABELS[s])}</span>'
        f'<span class="count" data-count="{_e(s.value)}">{_e(counts[s.value])}</span></label>'
        for s in STATES
    )
    cycle = status["last_cycle_at"]
    cycle_html = (
        f'<time datetime="{_e(cycle)}">{_e(when(cycle))}</time>'
        f'<span class="sub">{_e(ago(status["last_cycle_age_seconds"]))}</span>'
        if cycle
        else '<span>not yet</span><span class="sub">the first cycle is running</span>'
    )
    reload = status["config_reload"]
    reload_html = (
        '<span class="good">OK</span>' if reload["ok"] else '<span class="bad">Failed</span>'
    ) + (
        f'<span class="sub">loaded {_e(ago(reload["last_success_age_seconds"]))}</span>'
        if reload["last_success_at"]
        else ""
    )
    api_html = "".join(
        f'<li class="r-{_e(w["reachability"])}"><span class="ws">{_e(w["name"])}</span> '
        f"{_e(_reachability_text(w))}</li>"
        for w in status["workspaces"]
    )
    banners = "".join(f'<p class="banner">{_e(b)}</p>' for b in _banners(status))
    body = "".join(render_row(r, not s) for r, s in zip(rows, shown, strict=True))
    visible = sum(shown)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>ElevenLabs link monitor</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body data-refresh-ms="{int(refresh * 1000)}">
<header class="top">
<div class="brand"><h1>ElevenLabs link monitor</h1>
<span class="version" id="f-version">v{_e(status["version"])}</span></div>
<p class="live" id="live" role="status">Rendered at {_e(when(status["generated_at"]))} \
· reload the page to refresh</p>
</header>
<main>
<div id="offline" class="banner offline" role="alert" hidden></div>
<div id="banners" aria-live="polite">{banners}</div>
<section class="health" aria-label="Monitor health">
<div class="fig"><h2>Agents watched</h2><p id="f-agents"><span class="big">{_e(status["agents"])}</span>\
<span class="sub">{_e(status["alerting"])} alerting</span></p></div>
<div class="fig"><h2>Last full cycle</h2><p id="f-cycle">{cycle_html}</p></div>
<div class="fig"><h2>Config reload</h2><p id="f-config">{reload_html}</p></div>
<div class="fig"><h2>API reachability</h2><ul id="f-api" class="api">{api_html}</ul></div>
</section>
<form id="filters" class="filters" method="get" action="/" role="search">
<fieldset class="tiles"><legend>States</legend>\
<input type="hidden" name="state" value="">{tiles}</fieldset>
<div class="search"><label for="q">Filter</label>
<input type="search" id="q" name="q" value="{_e(query)}" placeholder="name, agent id, workspace, error…" autocomplete="off" spellcheck="false">
<button type="submit" class="apply">Apply</button>
<a class="clear" href="/">Clear</a></div>
</form>
<p class="shown" id="shown">Showing {visible} of {len(rows)} agents</p>
<div class="table-wrap">
<table id="agents">
<thead><tr><th scope="col">State</th><th scope="col">Workspace</th><th scope="col">Name</th>\
<th scope="col">Agent ID</th><th scope="col">Expires</th><th scope="col">Last successful poll</th>\
<th scope="col">Last error</th></tr></thead>
<tbody>{body}</tbody>
</table>
<p class="empty" id="empty"{"" if rows and visible == 0 else " hidden"}>No agent matches the filter.</p>
<p class="empty" id="none"{"" if not rows else " hidden"}>No agents are watched yet.</p>
</div>
</main>
<footer class="foot">JSON: <a href="/api/v1/agents">/api/v1/agents</a> ·
<a href="/api/v1/status">/api/v1/status</a> · <a href="/metrics">/metrics</a></footer>
</body>
</html>
"""


# --- routes -----------------------------------------------------------------------------------


def status_routes(
    store: Store,
    health: Health,
    config: Callable[[], Config],
    clock: Callable[[], float],
    ready: Callable[[], bool] | None = None,
) -> list[BaseRoute]:
    """Routes of the status page, its assets and the JSON API; `ready` is /readyz's answer."""

    def gather() -> tuple[list[Row], dict[str, Any], Config]:
        now = clock()
        current = config()
        thresholds = Thresholds(current.thresholds.warning, current.thresholds.critical)
        records = store.snapshot()
        rows = agent_rows(records, now, thresholds)
        figures = status_figures(
            records, rows, health, current, now, ready=ready() if ready is not None else None
        )
        return rows, figures, current

    async def page(request: Request) -> Response:
        rows, status, current = gather()
        states = requested_states(request.query_params.getlist("state"), strict=False)
        query = request.query_params.get("q", "")[:200]
        text = render_page(
            rows, status, query=query, states=states, refresh=refresh_seconds(current)
        )
        return Response(text, media_type="text/html; charset=utf-8", headers=dict(HEADERS))

    async def agents(request: Request) -> Response:
        rows, status, _ = gather()
        try:
            states = requested_states(request.query_params.getlist("state"), strict=True)
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        workspaces = {w for w in request.query_params.getlist("workspace") if w}
        chosen = [
            r
            for r in rows
            if (states is None or State(r["state"]) in states)
            and (not workspaces or r["workspace"] in workspaces)
        ]
        return _json(
            {
                "schema_version": SCHEMA_VERSION,
                "generated_at": status["generated_at"],
                "generated_at_unix": status["generated_at_unix"],
                "agents": chosen,
            }
        )

    async def status_endpoint(_: Request) -> Response:
        return _json(gather()[1])

    def asset(body: str, media_type: str) -> Callable[[Request], Any]:
        async def endpoint(_: Request) -> Response:
            return Response(body, media_type=media_type, headers=dict(HEADERS))

        return endpoint

    read_only = ["GET", "HEAD"]
    return [
        Route("/", page, methods=read_only),
        Route("/api/v1/agents", agents, methods=read_only),
        Route("/api/v1/status", status_endpoint, methods=read_only),
        Route("/assets/app.css", asset(APP_CSS, "text/css; charset=utf-8"), methods=read_only),
        Route("/assets/app.js", asset(APP_JS, "text/javascript; charset=utf-8"), methods=read_only),
        Route("/assets/favicon.svg", asset(FAVICON_SVG, "image/svg+xml"), methods=read_only),
    ]


def _json(data: Mapping[str, Any], status_code: int = 200) -> Response:
    return JSONResponse(data, status_code=status_code, headers=dict(HEADERS))


def page_url(query: str = "", states: Iterable[str] | None = None) -> str:
    """The page's URL for a filter, as the script writes it (for links and tests)."""
    params: list[tuple[str, str]] = []
    if states is not None:
        chosen = list(states)
        params += [("state", s) for s in chosen] if chosen else [("state", "")]
    if query:
        params.append(("q", query))
    return "/?" + urlencode(params) if params else "/"
