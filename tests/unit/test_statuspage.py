"""The status page and its JSON API: schema, order, filters, escaping and headers."""

from __future__ import annotations

import asyncio
import importlib
import math
import pkgutil
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

import monitor.web.status
from monitor import __version__
from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.evaluate import (
    LINK_WITHOUT_EXPIRY,
    STATES,
    TOKEN_MISSING,
    Kind,
    Observation,
    State,
)
from monitor.model import AgentKey, Health, LinkAnswer, PollFailure, Reason, Target
from monitor.store import Store
from monitor.web.status import assets
from monitor.web.status.assets import STATIC_FILES, fingerprinted
from monitor.web.status.figures import agent_row
from monitor.web.status.headers import CSP
from monitor.web.status.routes import API_MAX_PAGE_SIZE, API_PAGE_SIZE, PARTIAL_PATH, status_routes
from monitor.web.status.search import MAX_TERMS, PAGE_SIZE, QUERY_LIMIT, page_url, search_terms
from monitor.web.status.text import LABELS, ago, span, time_left, time_of_day, when

DAY = 86400.0
NOW = 1_800_000_000.0
XSS = "<img src=x onerror=alert(1)>"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "status-api.md"

ROW_FIELDS: dict[str, type | tuple[type, ...]] = {
    "workspace": str,
    "agent_id": str,
    "agent_name": str,
    "labels": dict,
    "state": str,
    "state_label": str,
    "answer": (str, type(None)),
    "expires_at": (str, type(None)),
    "expires_at_unix": (int, float, type(None)),
    "seconds_left": (int, type(None)),
    "polled": bool,
    "last_poll_ok": bool,
    "last_success_at": (str, type(None)),
    "last_success_unix": (int, float, type(None)),
    "last_success_age_seconds": (int, type(None)),
    "last_error": (str, type(None)),
    "last_error_detail": (str, type(None)),
    "usage": str,
    "last_call_at": (str, type(None)),
    "last_call_unix": (int, float, type(None)),
    "last_call_age_seconds": (int, type(None)),
    "archived": (bool, type(None)),
}
STATUS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "generated_at": str,
    "generated_at_unix": (int, float),
    "version": str,
    "agents": int,
    "ready": bool,
    "states": dict,
    "alerting": int,
    "archived": int,
    "last_cycle_at": (str, type(None)),
    "last_cycle_unix": (int, float, type(None)),
    "last_cycle_age_seconds": (int, type(None)),
    "poll_interval_seconds": (int, float),
    "stale_after_seconds": (int, float),
    "active_window_seconds": (int, float),
    "stale": bool,
    "config_reload": dict,
    "thresholds": dict,
    "workspaces": list,
}
WORKSPACE_FIELDS = {
    "name",
    "agents",
    "polled",
    "answered",
    "reachability",
    "last_errors",
    "listing",
    "usage_listings_failing",
}


class Client:
    """Requests to the ASGI app in-process (starlette's TestClient is deprecated with httpx)."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=self._transport, base_url="http://status.test"
            ) as client:
                return await client.request(method, path, params=params)

        return asyncio.run(send())

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", path, params)

    def head(self, path: str) -> httpx.Response:
        return self.request("HEAD", path)


def answer(expires_at: float | None = None, kind: Kind = Kind.LINK) -> LinkAnswer:
    return LinkAnswer(Observation(kind, expires_at), "f" if kind is Kind.LINK else None)


class Setup:
    """A store filled by hand, the app the daemon would serve, and a clock to move."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.now = NOW
        self.store = Store()
        self.health = Health(config_reload_at=NOW - 60)
        self.settings = ConfigHolder(
            Config.model_validate(
                config or {"agents": [{"id": "x"}], "poll": {"interval": "5m", "jitter": "10s"}},
            )
        )
        routes = status_routes(self.store, self.health, self.settings, lambda: self.now)
        self.client = Client(Starlette(routes=routes))

    def watch(self, *agents: tuple[str, str, str]) -> None:
        self.store.sync(Target(AgentKey(ws, agent_id), name) for ws, agent_id, name in agents)

    def poll(self, agent_id: str, outcome: LinkAnswer | PollFailure, ws: str = "default") -> None:
        assert self.store.record(outcome, AgentKey(ws, agent_id), self.now - 5) is not None

    def json(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()


def every_state() -> Setup:
    """Agents in every state, listed in an order the page must not keep."""
    s = Setup()
    s.watch(
        ("default", "ok_far", "far"),
        ("default", "ok_forever", "forever"),
        ("default", "ok_near", "near"),
        ("default", "warning_late", "w-late"),
        ("default", "warning_soon", "w-soon"),
        ("default", "critical", "crit"),
        ("default", "unknown", "unk"),
        ("default", "expired_recent", "exp-recent"),
        ("default", "expired_long", "exp-long"),
        ("default", "missing", "miss"),
        ("default", "gone", "gone"),
        ("default", "xss", XSS),
    )
    s.poll("ok_far", answer(NOW + 60 * DAY))
    s.poll("ok_forever", LinkAnswer(LINK_WITHOUT_EXPIRY, "f"))
    s.poll("ok_near", answer(NOW + 10 * DAY))
    s.poll("warning_late", answer(NOW + 5 * DAY))
    s.poll("warning_soon", answer(NOW + 3 * DAY + 4 * 3600))
    s.poll("critical", answer(NOW + 3600))
    s.poll("unknown", PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503))
    s.poll("expired_recent", answer(NOW - 2 * 3600))
    s.poll("expired_long", answer(NOW - 3 * DAY))
    s.poll("missing", LinkAnswer(TOKEN_MISSING, None))
    s.poll("gone", PollFailure(Reason.NOT_FOUND, "HTTP 404 agent_not_found", 404))
    s.poll("xss", answer(NOW + 20 * DAY))
    s.health.last_cycle = NOW - 7
    return s


ORDER = [
    ("expired_long", "expired"),
    ("expired_recent", "expired"),
    ("missing", "missing"),
    ("gone", "not_found"),
    ("critical", "critical"),
    ("warning_soon", "warning"),
    ("warning_late", "warning"),
    ("unknown", "unknown"),
    ("ok_near", "ok"),
    ("xss", "ok"),
    ("ok_far", "ok"),
    ("ok_forever", "ok"),
]


def test_agents_are_sorted_soonest_to_die_first() -> None:
    body = every_state().json("/api/v1/agents")
    assert [(r["agent_id"], r["state"]) for r in body["agents"]] == ORDER
    # The state order of the page is the documented one.
    assert [s.value for s in STATES] == [
        "expired",
        "missing",
        "not_found",
        "critical",
        "warning",
        "unknown",
        "ok",
    ]


def test_agent_rows_follow_the_schema() -> None:
    body = every_state().json("/api/v1/agents")
    assert set(body) == {
        "schema_version",
        "generated_at",
        "generated_at_unix",
        "total",
        "matching",
        "offset",
        "limit",
        "next",
        "agents",
    }
    assert body["schema_version"] == 1
    assert (body["total"], body["matching"], body["offset"]) == (12, 12, 0)
    assert (body["limit"], body["next"]) == (API_PAGE_SIZE, None)
    assert body["generated_at"] == "2027-01-15T08:00:00Z"
    assert body["generated_at_unix"] == NOW
    for row in body["agents"]:
        assert set(row) == set(ROW_FIELDS), row
        for name, kind in ROW_FIELDS.items():
            assert isinstance(row[name], kind), (name, row[name])
        assert row["state_label"] == LABELS[State(row["state"])]
    rows = {r["agent_id"]: r for r in body["agents"]}
    assert rows["critical"] == {
        "workspace": "default",
        "agent_id": "critical",
        "agent_name": "crit",
        "labels": {},
        "state": "critical",
        "state_label": "Critical",
        "answer": "link",
        "expires_at": "2027-01-15T09:00:00Z",
        "expires_at_unix": NOW + 3600,
        "seconds_left": 3600,
        "polled": True,
        "last_poll_ok": True,
        "last_success_at": "2027-01-15T07:59:55Z",
        "last_success_unix": NOW - 5,
        "last_success_age_seconds": 5,
        "last_error": None,
        "last_error_detail": None,
        "usage": "unknown",
        "last_call_at": None,
        "last_call_unix": None,
        "last_call_age_seconds": None,
        "archived": None,
    }
    assert rows["expired_recent"]["seconds_left"] == -7200
    assert rows["missing"]["answer"] == "missing"
    assert rows["missing"]["expires_at"] is None
    assert rows["gone"]["answer"] == "not_found"
    assert rows["gone"]["last_error"] == "not_found"
    assert rows["gone"]["last_error_detail"] == "HTTP 404 agent_not_found"
    assert rows["gone"]["last_success_at"] is None
    assert rows["unknown"]["answer"] is None
    assert rows["unknown"]["polled"] is True
    assert rows["unknown"]["last_poll_ok"] is False
    assert rows["ok_forever"]["expires_at"] is None
    assert rows["xss"]["agent_name"] == XSS


def test_a_failed_poll_keeps_what_the_last_answer_said() -> None:
    s = Setup()
    s.watch(("default", "bot", "bot"))
    s.poll("bot", answer(NOW + 3600))
    s.poll("bot", PollFailure(Reason.TIMEOUT, "timed out"))
    (row,) = s.json("/api/v1/agents")["agents"]
    assert (row["state"], row["last_poll_ok"], row["last_error"]) == ("critical", False, "timeout")
    assert row["expires_at_unix"] == NOW + 3600
    assert row["last_success_unix"] == NOW - 5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?state=critical", ["critical"]),
        ("?state=critical,expired", ["expired_long", "expired_recent", "critical"]),
        ("?state=critical&state=expired", ["expired_long", "expired_recent", "critical"]),
        ("?state=not_found&state=", ["gone"]),
        ("?state=", []),
        ("?state=ok&workspace=nope", []),
        ("?state=ok&workspace=default", ["ok_near", "xss", "ok_far", "ok_forever"]),
        ("?unrelated=1", [a for a, _ in ORDER]),
    ],
)
def test_the_agents_can_be_filtered_by_state(query: str, expected: list[str]) -> None:
    body = every_state().json("/api/v1/agents" + query)
    assert [r["agent_id"] for r in body["agents"]] == expected


def test_an_unknown_state_is_a_clear_error() -> None:
    response = every_state().client.get("/api/v1/agents?state=critical,bogus")
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert "unknown state 'bogus'" in response.json()["error"]


def test_the_status_follows_the_schema() -> None:
    body = every_state().json("/api/v1/status")
    assert set(body) == set(STATUS_FIELDS)
    for name, kind in STATUS_FIELDS.items():
        assert isinstance(body[name], kind), (name, body[name])
    assert body["schema_version"] == 1
    assert body["version"] == __version__
    assert body["agents"] == 12
    assert body["ready"] is True
    assert list(body["states"]) == [s.value for s in STATES]
    assert body["states"] == {
        "expired": 2,
        "missing": 1,
        "not_found": 1,
        "critical": 1,
        "warning": 2,
        "unknown": 1,
        "ok": 4,
    }
    assert body["alerting"] == 7
    assert body["last_cycle_at"] == "2027-01-15T07:59:53Z"
    assert body["last_cycle_age_seconds"] == 7
    assert body["poll_interval_seconds"] == 300
    assert body["stale_after_seconds"] == 2 * 300 + 10 + 30
    assert body["stale"] is False
    assert body["config_reload"] == {
        "ok": True,
        "last_success_at": "2027-01-15T07:59:00Z",
        "last_success_age_seconds": 60,
    }
    assert body["thresholds"] == {"warning_seconds": 7 * DAY, "critical_seconds": DAY}
    (workspace,) = body["workspaces"]
    assert set(workspace) == WORKSPACE_FIELDS
    # The 404 is an answer from the API; the 503 is not.
    assert workspace == {
        "name": "default",
        "agents": 12,
        "polled": 12,
        "answered": 11,
        "reachability": "degraded",
        "last_errors": {"not_found": 1, "server_error": 1},
        "listing": None,  # the workspace does not discover
        "usage_listings_failing": {},
    }


def test_reachability_is_told_per_workspace() -> None:
    s = Setup(
        {
            "workspaces": [
                {"name": "prod", "agents": [{"id": "p1"}, {"id": "p2"}]},
                {"name": "eu", "agents": [{"id": "e1"}]},
                {"name": "new", "agents": [{"id": "n1"}]},
            ]
        }
    )
    s.watch(("prod", "p1", ""), ("prod", "p2", ""), ("eu", "e1", ""), ("new", "n1", ""))
    s.poll("p1", answer(NOW + 30 * DAY), "prod")
    s.poll("p2", PollFailure(Reason.NOT_FOUND, "HTTP 404"), "prod")
    s.poll("e1", PollFailure(Reason.CONNECTION, "cannot connect"), "eu")
    workspaces = {w["name"]: w for w in s.json("/api/v1/status")["workspaces"]}
    assert {n: w["reachability"] for n, w in workspaces.items()} == {
        "prod": "ok",
        "eu": "unreachable",
        "new": "pending",
    }
    assert workspaces["eu"]["last_errors"] == {"connection": 1}
    assert s.json("/api/v1/status")["ready"] is False
    page = s.client.get("/").text
    assert "The API of workspace eu cannot be reached" in page
    assert "(1 connection)" in page
    assert "prod</span> 2/2 answering" in page


def test_stale_knowledge_is_said_plainly() -> None:
    s = every_state()
    assert "stale" not in s.client.get("/").text
    s.now = NOW - 7 + 641  # the last cycle is older than twice the interval + jitter + 30 s
    assert s.json("/api/v1/status")["stale"] is True
    page = "".join(Parsed(s.client.get("/").text).text)
    assert (
        "The monitor's knowledge is stale: the last full poll cycle finished 10 m 41 s ago" in page
    )
    assert "one is expected every 5 m" in page


def test_no_cycle_at_all_is_stale_after_a_while() -> None:
    s = Setup()
    s.watch(("default", "x", ""))
    assert s.json("/api/v1/status")["stale"] is False
    assert "the first cycle is running" in s.client.get("/").text
    s.now = NOW - 60 + 641
    assert s.json("/api/v1/status")["stale"] is True
    assert "no full poll cycle has finished yet" in s.client.get("/").text


def test_a_failed_reload_is_shown() -> None:
    s = every_state()
    s.health.config_reload_ok = False
    assert s.json("/api/v1/status")["config_reload"]["ok"] is False
    page = s.client.get("/").text
    assert '<span class="bad">Failed</span>' in page
    assert "The last config reload failed" in page


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3 * DAY + 4 * 3600 + 59, "in 3 d 4 h"),
        (2 * 3600, "in 2 h"),
        (4 * 60 + 10, "in 4 m 10 s"),
        (12, "in 12 s"),
        (0, "expired just now"),
        (-2 * 3600 - 30, "expired 2 h ago"),
        (-(DAY + 60), "expired 1 d ago"),
    ],
)
def test_time_left_reads_naturally(seconds: float, text: str) -> None:
    row = {"seconds_left": int(seconds), "answer": "link"}
    assert time_left(row) == text


def test_time_left_without_an_expiry() -> None:
    assert time_left({"seconds_left": None, "answer": "link"}) == "never expires"
    assert time_left({"seconds_left": None, "answer": "missing"}) == "no shareable link"
    assert time_left({"seconds_left": None, "answer": "not_found"}) == "agent not found"
    assert time_left({"seconds_left": None, "answer": None}) == "not known yet"
    assert span(59) == "59 s"
    assert span(3600 + 59) == "1 h"


class Parsed(HTMLParser):
    """The page's elements, attributes and text, as a browser would see them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def rows(self) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == "tr" and "data-state" in a]


def test_the_page_renders_every_agent_in_order() -> None:
    s = every_state()
    response = s.client.get("/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = Parsed(response.text)
    assert [r["data-state"] for r in page.rows()] == [state for _, state in ORDER]
    assert all("hidden" not in r for r in page.rows())
    for state in STATES:  # every state has its label next to its colour
        assert f'<span class="badge s-{state.value}"' in response.text
        assert LABELS[state] in page.text
    assert "in 3 d 4 h" in page.text
    assert "expired 2 h ago" in page.text
    assert "expired 3 d ago" in page.text
    assert "not_found: HTTP 404 agent_not_found" in page.text
    assert "Showing 12 of 12 agents" in page.text
    assert f"v{__version__}" in page.text


def test_the_page_applies_the_filter_in_the_url() -> None:
    s = every_state()
    page = Parsed(s.client.get("/?state=warning&state=critical&q=W-").text)
    # The server filters: rows that do not match are not sent at all.
    assert [r["data-state"] for r in page.rows()] == ["warning", "warning"]
    assert "Showing 2 of 12 agents" in page.text
    boxes = {
        a["value"]: "checked" in a
        for t, a in page.tags
        if a.get("type") == "checkbox" and a.get("name") == "state"
    }
    assert boxes == {s.value: s in (State.WARNING, State.CRITICAL) for s in STATES}
    assert ("input", "W-") in [(t, a.get("value")) for t, a in page.tags if a.get("id") == "q"]
    # Several words must all match; nothing matching says so.
    page = Parsed(s.client.get("/?q=exp+long").text)
    assert [r["data-state"] for r in page.rows()] == ["expired"]
    page = Parsed(s.client.get("/?q=nothing-like-this").text)
    assert page.rows() == []
    empty = next(a for t, a in page.tags if a.get("id") == "empty")
    assert "hidden" not in empty
    # The last error and the state label are searched too.
    page = Parsed(s.client.get("/?q=HTTP+503").text)
    assert [r["data-state"] for r in page.rows()] == ["unknown"]
    page = Parsed(s.client.get("/?q=not+found").text)
    assert [r["data-state"] for r in page.rows()] == ["not_found"]
    assert page_url("prod", ["critical"]) == "/?state=critical&q=prod"
    assert page_url("prod", ["critical"], 3) == "/?state=critical&q=prod&page=3"
    assert page_url("", []) == "/?state="
    assert page_url() == "/"


def test_every_value_is_escaped() -> None:
    s = every_state()
    evil = '"><script>alert(1)</script>'
    reflected = s.client.get("/", params={"q": evil, "state": evil}).text
    assert "<script>alert" not in reflected
    assert ("input", evil) in [(t, a.get("value")) for t, a in Parsed(reflected).tags]
    for path in ("/", PARTIAL_PATH):
        text = s.client.get(path).text
        assert "<img" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
        assert XSS in "".join(Parsed(text).text)  # shown as text, exactly as named
    text = s.client.get("/").text
    page = Parsed(text)
    scripts = [a for t, a in page.tags if t == "script"]
    assert len(scripts) == 1
    assert re.fullmatch(r"/static/app\.[0-9a-f]{12}\.js", scripts[0]["src"] or "")
    assert scripts[0] == {"src": scripts[0]["src"], "defer": None}
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
    # Nothing loads from anywhere else.
    for _, attrs in page.tags:
        for name in ("src", "href", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith("/"), (name, value)


def static_urls(s: Setup) -> dict[str, str]:
    """The fingerprinted URLs the page links to, by file name."""
    text = s.client.get("/").text
    found = re.findall(r'"(/static/(\w+)\.[0-9a-f]{12}\.(\w+))"', text)
    return {f"{stem}.{suffix}": url for url, stem, suffix in found}


def test_the_script_never_writes_html_nor_formats_anything() -> None:
    s = every_state()
    script = s.client.get(static_urls(s)["app.js"]).text
    assert "innerHTML" not in script
    assert "outerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "eval(" not in script
    # One renderer: the server's. No time, duration or row is formatted in the browser.
    for formatter in ("86400", "3600", "toISOString", "toLocale", "createElement", "UTC"):
        assert formatter not in script, formatter
    # One request per refresh: the partial, nothing else.
    assert re.findall(r"fetch\(", script) == ["fetch("]
    assert "/api/v1/" not in script


def test_no_javascript_or_css_lives_in_python() -> None:
    package = Path(assets.__file__).parents[2]
    assert not (package / "statuspage_assets.py").exists()
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for marker in ("addEventListener", "querySelector", "font-family", "border-radius"):
            assert marker not in text, (path.name, marker)
    for name in STATIC_FILES:
        assert (package / "web" / "static" / name).is_file(), name


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/", "text/html; charset=utf-8"),
        (PARTIAL_PATH, "text/html; charset=utf-8"),
        ("/api/v1/agents", "application/json"),
        ("/api/v1/status", "application/json"),
    ],
)
def test_read_only_with_strict_headers(path: str, media_type: str) -> None:
    s = every_state()
    response = s.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "no-store"
    assert_strict(response)
    head = s.client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert s.client.request(method, path).status_code == 405, method


def assert_strict(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "unsafe" not in CSP
    assert "default-src 'none'" in CSP
    assert "script-src 'self'" in CSP
    assert "frame-ancestors 'none'" in CSP


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_fingerprinted_names_and_are_cached_for_good(
    name: str, media_type: str
) -> None:
    s = every_state()
    url = static_urls(s)[name]
    package = Path(assets.__file__).parents[1]
    body = (package / "static" / name).read_bytes()
    assert url == "/static/" + fingerprinted(name, body)
    response = s.client.get(url)
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert_strict(response)
    assert s.client.head(url).status_code == 200
    # Only the fingerprinted name is served: an old or a bare name is not a stale file.
    stem, _, suffix = name.rpartition(".")
    for other in (f"/static/{name}", f"/static/{stem}.000000000000.{suffix}", "/assets/" + name):
        missing = s.client.get(other)
        assert missing.status_code == 404, other
        assert "immutable" not in missing.headers.get("cache-control", "")
    assert s.client.get("/static/../status/routes.py").status_code == 404
    for method in ("POST", "PUT", "DELETE"):
        assert s.client.request(method, url).status_code == 405, method


def test_a_fingerprint_follows_the_content() -> None:
    assert fingerprinted("app.js", b"a") != fingerprinted("app.js", b"b")
    assert re.fullmatch(r"app\.[0-9a-f]{12}\.js", fingerprinted("app.js", b"a"))


def test_the_documented_schema_matches_the_api() -> None:
    """docs/status-api.md lists every field the API sends, and no other."""
    doc = DOCS.read_text(encoding="utf-8")

    def documented(heading: str) -> set[str]:
        table = doc.split(f"| {heading} | type | meaning |", 1)[1].split("\n\n", 1)[0]
        return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))

    s = every_state()
    agents = s.json("/api/v1/agents")
    status = s.json("/api/v1/status")
    assert documented("top-level field") == set(agents)
    assert documented("row field") == set(ROW_FIELDS)
    assert documented("field") == set(status)
    assert documented("workspace field") == WORKSPACE_FIELDS
    assert "schema version 1" in doc


# --- one renderer, many agents, total formatters ----------------------------------------------


def test_the_partial_is_the_pages_own_regions() -> None:
    """One renderer: every region the partial sends is, byte for byte, in the page."""
    s = every_state()
    for query in ("", "?state=critical&state=expired", "?q=nothing-like-this"):
        page = s.client.get("/" + query).text
        partial = s.client.get(PARTIAL_PATH + query).text
        regions = re.findall(r' id="([\w-]+)" data-region', partial)
        assert regions == re.findall(r' id="([\w-]+)" data-region', page)
        assert {"rows", "banners", "f-agents", "count-ok", "pager", "generated"} <= set(regions)
        for line in partial.replace("<table>", "").replace("</table>", "").splitlines():
            assert line in page, line
        assert "<html" not in partial
        assert "<script" not in partial


def test_the_status_counts_without_building_or_sorting_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = every_state()

    def forbidden(*_: object) -> Any:
        raise AssertionError("the status must not build or sort rows")

    for name in ("agent_row", "sort_key", "select"):
        replace_everywhere(monkeypatch, name, forbidden)
    body = s.json("/api/v1/status")
    assert body["agents"] == 12
    assert sum(body["states"].values()) == 12


def test_ready_is_what_the_daemon_says() -> None:
    s = every_state()
    assert s.json("/api/v1/status")["ready"] is True  # by default, the store's readiness
    routes = status_routes(s.store, s.health, s.settings, lambda: s.now, lambda: False)
    assert Client(Starlette(routes=routes)).get("/api/v1/status").json()["ready"] is False


def many(count: int) -> Setup:
    s = Setup()
    s.watch(*((("prod", f"agent_{i:05d}", f"bot {i}")) for i in range(count)))
    for i in range(count):
        s.poll(f"agent_{i:05d}", answer(NOW + DAY * 10 + i * 60), "prod")
    s.poll(f"agent_{count - 1:05d}", answer(NOW + 60), "prod")  # the only critical one
    return s


def test_ten_thousand_agents_are_paged_and_any_one_can_be_found() -> None:
    s = many(10_000)
    page = Parsed(s.client.get("/").text)
    ids = [a["data-state"] for a in page.rows()]
    assert len(ids) == PAGE_SIZE
    text = "".join(page.text)
    assert f"Showing 1 to {PAGE_SIZE:,} of 10,000 agents" in text
    assert "Page 1 of 100" in text
    # The most urgent is on the first page, wherever it sits in the store.
    assert page.rows()[0]["data-state"] == "critical"
    links = {a.get("rel"): a.get("href") for t, a in page.tags if t == "a" and a.get("rel")}
    assert links == {"next": "/?page=2"}
    # A filter finds any agent, however far down the list it is.
    page = Parsed(s.client.get("/?q=agent_09876").text)
    assert len(page.rows()) == 1
    assert "agent_09876" in "".join(page.text)
    # Pages follow the filter; a page past the end shows the last one.
    page = Parsed(s.client.get("/?state=ok&q=bot&page=2").text)
    assert "Showing 101 to 200 of 9,999 matching, of 10,000 agents" in "".join(page.text)
    links = {a.get("rel"): a.get("href") for t, a in page.tags if t == "a" and a.get("rel")}
    assert links == {"prev": "/?state=ok&q=bot", "next": "/?state=ok&q=bot&page=3"}
    page = Parsed(s.client.get("/?page=5000").text)
    assert "Page 100 of 100" in "".join(page.text)
    assert len(page.rows()) == PAGE_SIZE
    assert Parsed(s.client.get("/?page=x").text).rows()[0]["data-state"] == "critical"
    # The JSON API lists every agent, a page at a time.
    body = s.json("/api/v1/agents")
    assert (body["total"], body["matching"], len(body["agents"])) == (10_000, 10_000, 500)
    assert body["agents"][0]["agent_id"] == "agent_09999"  # the most urgent comes first
    seen = [r["agent_id"] for r in body["agents"]]
    while body["next"] is not None:
        body = s.json(body["next"])
        seen += [r["agent_id"] for r in body["agents"]]
    assert len(seen) == len(set(seen)) == 10_000


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[object]:
    """Count the calls of one of the status page's functions (the calls are the list's
    length), wherever it is called from."""
    calls: list[object] = []
    real = next(getattr(m, name) for m in STATUS_MODULES if hasattr(m, name))

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    replace_everywhere(monkeypatch, name, counted)
    return calls


# Each of the status page's modules: a function is replaced in every one that calls it.
STATUS_MODULES = tuple(
    importlib.import_module(f"monitor.web.status.{module.name}")
    for module in pkgutil.iter_modules(monitor.web.status.__path__)
)


def replace_everywhere(monkeypatch: pytest.MonkeyPatch, name: str, replacement: object) -> None:
    """Replace one of the status page's functions in every module that calls it by name."""
    for module in STATUS_MODULES:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, replacement)


def test_a_query_builds_each_search_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query of 100 words costs one pass over the agents, not one per word (the old page
    built every agent's search text once per word: 100 times each for `e e e ...`)."""
    s = many(300)
    texts = counting(monkeypatch, "search_text")
    keys = counting(monkeypatch, "sort_key")
    crafted = "e " * 100 + " ".join(f"w{i}" for i in range(50))
    for path in ("/", PARTIAL_PATH):
        assert s.client.get(path, params={"q": crafted}).status_code == 200
    assert len(texts) <= 300  # at most once per agent, for both requests together
    assert len(keys) <= 300
    # Records are immutable: a new poll rebuilds that agent's entry only.
    texts.clear()
    s.poll("agent_00007", answer(NOW + 60), "prod")
    page = Parsed(s.client.get("/", params={"q": "agent_00007 critical"}).text)
    assert [r["data-state"] for r in page.rows()] == ["critical"]
    assert len(texts) == 1
    # Agents no longer watched leave the index.
    s.watch(("prod", "agent_00001", "bot 1"))
    assert len(Parsed(s.client.get("/", params={"q": "bot"}).text).rows()) == 1


def test_the_words_of_a_query_are_deduplicated_and_capped() -> None:
    assert search_terms("e " * 100) == ["e"]
    assert search_terms("Bo bot BOT prod") == ["bot", "prod"]
    words = [f"w{i:02d}" for i in range(30)]
    assert search_terms(" ".join(words)) == words[:MAX_TERMS]
    assert search_terms("x" * QUERY_LIMIT + " beyond") == ["x" * QUERY_LIMIT]
    # Dropping a word found inside another never changes what matches.
    s = every_state()
    for query, narrowest in (("ok ok_near", "ok_near"), ("crit critical", "critical")):
        rows = Parsed(s.client.get("/", params={"q": query}).text).rows()
        assert rows, query
        assert rows == Parsed(s.client.get("/", params={"q": narrowest}).text).rows()


def test_the_agents_api_answers_a_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    s = many(1200)
    rows = counting(monkeypatch, "agent_row")
    body = s.json("/api/v1/agents")
    assert len(body["agents"]) == API_PAGE_SIZE
    assert len(rows) == API_PAGE_SIZE  # rows are built for the page only, not for every agent
    assert (body["total"], body["matching"], body["offset"], body["limit"]) == (1200, 1200, 0, 500)
    assert body["next"] == "/api/v1/agents?limit=500&offset=500"
    last = s.json("/api/v1/agents?offset=1000")
    assert (len(last["agents"]), last["next"]) == (200, None)
    assert s.json("/api/v1/agents?offset=5000")["agents"] == []
    # Filters apply before the page: any agent is found, wherever it sorts.
    found = s.json("/api/v1/agents?q=agent_00777")
    assert [r["agent_id"] for r in found["agents"]] == ["agent_00777"]
    assert found["matching"] == 1
    critical = s.json("/api/v1/agents?state=critical&workspace=prod&limit=1")
    assert [r["agent_id"] for r in critical["agents"]] == ["agent_01199"]
    # `next` keeps the filters.
    ok = s.json("/api/v1/agents?state=ok&limit=1000")
    assert ok["next"] == "/api/v1/agents?state=ok&limit=1000&offset=1000"
    assert len(s.json(ok["next"])["agents"]) == 199
    assert len(s.json(f"/api/v1/agents?limit={API_MAX_PAGE_SIZE}")["agents"]) == 1000
    for bad in ("limit=0", "limit=1001", "limit=x", "limit=1_0", "offset=-1", "offset=1.5"):
        response = s.client.get(f"/api/v1/agents?{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0] in response.json()["error"]


ODD_TIMES = [math.nan, math.inf, -math.inf, 1e300, -1e300, 2**63, -(2**63), 0.0, -1.5, 1e18]


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_time_formatter_is_total(value: float) -> None:
    for formatter in (span, ago, when, time_of_day):
        assert isinstance(formatter(value), str)
    whole = int(value) if math.isfinite(value) else None
    for answer_kind in ("link", "missing", None):
        assert isinstance(time_left({"seconds_left": whole, "answer": answer_kind}), str)


@pytest.mark.parametrize("odd", ODD_TIMES)
def test_odd_times_render_without_an_error(odd: float) -> None:
    s = Setup()
    s.watch(("default", "odd", "odd"))
    assert s.store.record(answer(odd), AgentKey("default", "odd"), odd) is not None
    s.health.last_cycle = odd
    row = agent_row(s.store.snapshot()[0], State.OK, NOW)
    assert row["expires_at_unix"] is None or math.isfinite(row["expires_at_unix"])
    for path in ("/", PARTIAL_PATH, "/api/v1/agents", "/api/v1/status"):
        assert s.client.get(path).status_code == 200, path
    assert when(math.nan) == "nan"
    assert span(math.nan) == "an unknown time"
