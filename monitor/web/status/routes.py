"""The routes of the status page, its partial, its static files and the JSON API, and their
handlers: GET and HEAD only."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.model import Health, iso
from monitor.store import Store
from monitor.web.status.assets import STATIC_PATH, FingerprintedFiles, jinja_templates
from monitor.web.status.figures import (
    SCHEMA_VERSION,
    Evaluated,
    agent_row,
    refresh_seconds,
    status_figures,
)
from monitor.web.status.headers import HEADERS
from monitor.web.status.search import (
    QUERY_LIMIT,
    SORTS,
    BadQuery,
    Idle,
    Index,
    chosen_entries,
    flag,
    requested_states,
    search_terms,
    select,
)

PARTIAL_PATH = "/partial"
# What the page's script fetches on every refresh: one request.
REFRESH_PATHS = (PARTIAL_PATH,)
API_PAGE_SIZE = 500  # rows per answer of /api/v1/agents unless `limit` says otherwise
API_MAX_PAGE_SIZE = 1000


def status_routes(
    store: Store,
    health: Health,
    settings: ConfigHolder,
    clock: Callable[[], float],
    ready: Callable[[], bool] | None = None,
) -> list[BaseRoute]:
    """Routes of the status page, its partial, its static files and the JSON API.

    `ready` is what `/readyz` answers by; by default, the store's own readiness.
    """
    is_ready = ready if ready is not None else (lambda: store.ready)
    templates = functools.cache(jinja_templates)
    files = FingerprintedFiles()
    index = Index()

    def current() -> tuple[float, Config, list[Evaluated]]:
        now = clock()
        active = settings.current
        return now, active.config, index.refresh(store.snapshot(), now, active)

    def render(request: Request, template: str) -> Response:
        now, settings, items = current()
        params = request.query_params
        states = requested_states(params.getlist("state"), strict=False)
        query = params.get("q", "")[:QUERY_LIMIT]
        try:
            page = int(params.get("page", "1"))
        except ValueError:
            page = 1
        idle = _idle(params, now, settings)
        archived = flag(params.get("archived"))
        sort = params.get("sort", "state")
        view = select(
            index,
            now,
            query=query,
            states=states,
            page=page,
            idle=idle,
            archived=archived,
            sort=sort,
        )
        context = {
            "status": status_figures(items, health, settings, now, is_ready()),
            "view": view,
            "query": query,
            "chosen": states,
            "idle": idle is not None,
            "archived": archived,
            "sort": sort if sort in SORTS else "state",
            "sorts": SORTS_SHOWN,
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
            sort = params.get("sort", "state")
            if sort not in SORTS:
                raise BadQuery(f"unknown sort {sort[:40]!r}: use one of {', '.join(SORTS)}")
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        now, config, items = current()
        chosen = chosen_entries(
            index.entries(),
            terms=search_terms(params.get("q", "")),
            states=states,
            workspaces={w for w in params.getlist("workspace") if w},
            idle=_idle(params, now, config),
            archived=flag(params.get("archived")),
            sort=sort,
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


# The page's sort menu: value, words.
SORTS_SHOWN = (
    ("state", "Most urgent"),
    ("last_call", "Least used"),
    ("archived", "Archived first"),
)


def _idle(params: Mapping[str, str], now: float, config: Config) -> Idle | None:
    """`?idle=1`: not called within `usage.active_window`, or never."""
    return Idle(now, config.usage.active_window) if flag(params.get("idle")) else None


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
