"""The status page in a real headless Chromium, against the real daemon polling the stand-in."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from playwright.sync_api import Request, expect
from starlette.applications import Starlette

from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.evaluate import Kind, Observation
from monitor.model import AgentKey, Health, LinkAnswer, Target
from monitor.store import Store
from monitor.web.status.routes import PARTIAL_PATH, status_routes
from monitor.web.status.search import PAGE_SIZE
from tests.conftest import ConfigWriter, canary_token, config_data, running_daemon
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link, status
from tests.system.browser.conftest import OpenTab, Tab, axe_violations
from tests.system.browser.screenshot import DEMO_AGENTS, photograph, running_demo

DAY = 86400
XSS = "<img src=x onerror=alert(1)>"
ROWS = "#agents tbody tr:visible"

# The order the page must show, whatever the order of the config.
EXPECTED = [
    ("a_expired", "Expired"),
    ("a_missing", "Missing"),
    ("a_not_found", "Not found"),
    ("a_critical", "Critical"),
    ("a_warning_soon", "Warning"),
    ("a_warning_late", "Warning"),
    ("a_unknown", "Unknown"),
    ("a_xss", "OK"),
    ("a_ok", "OK"),
    ("a_no_expiry", "OK"),
]
IDS = [a for a, _ in EXPECTED]
StartDaemon = Callable[..., Daemon]


def ids(tab: Tab) -> list[str]:
    return tab.page.locator(f"{ROWS} td.c-id").all_inner_texts()


EVERY_SECOND = {"interval": "1s", "jitter": 0}


def start(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, agents: list[str]
) -> Daemon:
    """The daemon polling every second, ready."""
    daemon = start_daemon(write_config(agents, poll=EVERY_SECOND))
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    return daemon


@pytest.fixture(scope="module")
def every_state(
    module_standin: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    """An agent in every state, one with a hostile name, in a scrambled order. One daemon for
    the module: its tests only read the page, each in a browser context of its own."""
    standin = module_standin
    now = time.time()
    standin.set("a_ok", link(canary_token("ok"), now + 30 * DAY))
    standin.set("a_xss", link(canary_token("xss"), now + 20 * DAY))
    standin.set("a_no_expiry", link(canary_token("noexp"), None))
    standin.set("a_warning_late", link(canary_token("late"), now + 5 * DAY))
    standin.set("a_warning_soon", link(canary_token("soon"), now + 2 * DAY))
    standin.set("a_critical", link(canary_token("crit"), now + 3600))
    standin.set("a_expired", link(canary_token("exp"), now - 3600))
    standin.set("a_missing", link(None))
    standin.set("a_unknown", status(500, {"detail": {"status": "internal"}}))
    # a_not_found has no answer: the stand-in says 404 agent_not_found.
    scrambled = sorted(IDS, key=lambda a: a[::-1])
    assert scrambled != IDS
    config = config_data(standin.url, scrambled, poll=EVERY_SECOND)
    for agent in config["agents"]:
        if agent["id"] == "a_xss":
            agent["name"] = XSS
    path = tmp_path_factory.mktemp("every_state") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with running_daemon(path) as daemon:
        wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
        yield daemon


def test_every_state_is_shown_with_its_label_in_order(
    every_state: Daemon, open_tab: OpenTab
) -> None:
    tab = open_tab(every_state.url)
    page = tab.page
    badges = page.locator(f"{ROWS} .badge")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(IDS)
    expect(badges).to_have_text([label for _, label in EXPECTED])
    expect(page.locator(".tile .count")).to_have_text(["1", "1", "1", "1", "2", "1", "3"])
    expect(page.locator("#f-agents .big")).to_have_text("10")
    expect(page.locator("#f-api")).to_contain_text("default 9/10 answering")
    # Colour plus text: every state has a colour of its own.
    colours = badges.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    by_state = dict(zip([label for _, label in EXPECTED], colours, strict=True))
    assert len(set(by_state.values())) == 7, by_state
    expect(page.locator("tr", has_text="a_warning_soon").locator(".c-exp .sub")).to_have_text(
        re.compile(r"^in 1 d 23 h$|^in 2 d$")
    )
    expect(page.locator("tr", has_text="a_expired").locator(".c-exp .sub")).to_have_text(
        re.compile(r"^expired (59 m \d+ s|1 h) ago$")
    )
    expect(page.locator("tr", has_text="a_unknown").locator(".c-err")).to_have_text(
        "server_error: HTTP 500 internal"
    )
    server_rendered = _stable_cells(tab)

    # One request per refresh: the partial, which the page swaps in. Same rows, same words.
    requests: list[str] = []

    def seen(request: Request) -> None:
        requests.append(request.url)

    page.on("request", seen)
    tab.wait_for_refresh()
    page.remove_listener("request", seen)
    assert [r.replace(every_state.url, "") for r in requests] == [PARTIAL_PATH]
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(IDS)
    expect(badges).to_have_text([label for _, label in EXPECTED])
    assert _stable_cells(tab) == server_rendered

    # The attacker-named agent is text, never markup, before and after a refresh.
    expect(page.locator("td.c-name", has_text="onerror")).to_have_text(XSS)
    assert page.locator("#agents img").count() == 0
    assert page.evaluate("document.images.length") == 0
    assert tab.dialogs == []
    assert tab.errors == []


def _stable_cells(tab: Tab) -> list[list[str]]:
    """The cells that do not tick with the clock (ages and time left do)."""
    return [
        tab.page.locator(f"{ROWS} {cells}").all_inner_texts()
        for cells in ("td.c-state", "td.c-ws", "td.c-name", "td.c-id", "td.c-err", "td.c-exp time")
    ]


def test_the_filter_and_the_toggles_survive_a_refresh_and_a_reload(
    every_state: Daemon, open_tab: OpenTab
) -> None:
    tab = open_tab(every_state.url)
    page = tab.page
    expect(page.locator(ROWS)).to_have_count(10)

    page.locator("#q").fill("warning")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_warning_soon", "a_warning_late"])
    expect(page).to_have_url(re.compile(r"/\?q=warning$"))
    expect(page.locator("#shown")).to_have_text("Showing 2 of 10 agents")

    # Several words must all match.
    page.locator("#q").fill("a_  LATE ")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_warning_late"])
    page.locator("#q").fill("a_")

    # The state toggles: hide the healthy and the unknown.
    page.locator("label.tile.s-ok").click()
    page.locator("label.tile.s-unknown").click()
    expect(page.locator("label.tile.s-ok input")).not_to_be_checked()
    wanted = IDS[:6]
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(wanted)
    expect(page).to_have_url(
        re.compile(
            r"/\?state=expired&state=missing&state=not_found&state=critical&state=warning&q=a_$"
        )
    )

    # The script's own refresh keeps the filter (the server applies it: only matches come).
    tab.wait_for_refresh()
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(wanted)
    expect(page.locator("#agents tbody tr")).to_have_count(len(wanted))

    # So does a reload: the filter lives in the URL.
    page.reload()
    expect(page.locator("#q")).to_have_value("a_")
    expect(page.locator("label.tile.s-ok input")).not_to_be_checked()
    expect(page.locator("label.tile.s-critical input")).to_be_checked()
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(wanted)

    # Nothing left to show says so; toggling back shows the rows again.
    for state in ("expired", "missing", "not_found", "critical", "warning"):
        page.locator(f"label.tile.s-{state}").click()
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/\?state=&q=a_$"))
    page.locator("label.tile.s-critical").click()
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_critical"])

    # A shared link opens on the same view.
    shared = open_tab(every_state.url + "/?state=critical&state=expired&q=a_")
    expect(shared.page.locator(f"{ROWS} td.c-id")).to_have_text(["a_expired", "a_critical"])
    expect(shared.page.locator("label.tile.s-ok input")).not_to_be_checked()
    assert tab.errors == shared.errors == []


def test_a_state_change_at_the_api_shows_without_a_reload(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, open_tab: OpenTab
) -> None:
    standin.set("bot", link(canary_token("v1"), time.time() + 30 * DAY))
    daemon = start(standin, write_config, start_daemon, ["bot"])
    tab = open_tab(daemon.url)
    page = tab.page
    expect(page.locator(f"{ROWS} .badge")).to_have_text(["OK"])
    page.evaluate("window.notReloaded = true")

    standin.set("bot", link(None))
    expect(page.locator(f"{ROWS} .badge")).to_have_text(["Missing"])
    expect(page.locator(f"{ROWS} td.c-exp")).to_have_text("no shareable link")
    expect(page.locator(".tile.s-missing .count")).to_have_text("1")
    expect(page.locator(".tile.s-ok .count")).to_have_text("0")

    standin.set("bot", link(canary_token("v2"), time.time() + 3600))
    expect(page.locator(f"{ROWS} .badge")).to_have_text(["Critical"])
    assert page.evaluate("window.notReloaded") is True
    assert tab.errors == []


def test_an_unreachable_monitor_is_said_plainly(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, open_tab: OpenTab
) -> None:
    standin.set("bot", link(canary_token("v1"), time.time() + 30 * DAY))
    daemon = start(standin, write_config, start_daemon, ["bot"])
    tab = open_tab(daemon.url)
    page = tab.page
    expect(page.locator("#offline")).to_be_hidden()
    tab.wait_for_refresh()
    expect(page.locator("#live")).to_contain_text("Live · Updated")
    assert daemon.stop() == 0

    offline = page.locator("#offline")
    expect(offline).to_be_visible()
    expect(offline).to_contain_text("Cannot reach the monitor (connection failed)")
    as_of = page.locator("#generated").inner_text()
    expect(offline).to_contain_text(f"from its last answer, at {as_of}, and may be out of date")
    expect(page.locator("#live")).to_contain_text("Offline · Updated")
    # What it knew stays on the page.
    expect(page.locator(f"{ROWS} .badge")).to_have_text(["OK"])
    # The failed fetches themselves are the only console errors.
    assert all("Failed to load resource" in e or "Failed to fetch" in e for e in tab.errors)


def test_without_javascript_the_table_is_still_there(
    every_state: Daemon, open_tab: OpenTab
) -> None:
    tab = open_tab(every_state.url, javascript=False)
    page = tab.page
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(IDS)
    expect(page.locator(f"{ROWS} .badge")).to_have_text([label for _, label in EXPECTED])
    expect(page.locator("td.c-name", has_text="onerror")).to_have_text(XSS)
    expect(page.locator("#live")).to_contain_text("reload the page to refresh")
    # The form still filters, through the server.
    apply = page.locator("button.apply")
    expect(apply).to_be_visible()
    page.locator("label.tile.s-ok").click()
    page.locator("#q").fill("a_w")
    apply.click()
    expect(page).to_have_url(re.compile(r"q=a_w"))
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_warning_soon", "a_warning_late"])
    expect(page.locator("label.tile.s-ok input")).not_to_be_checked()
    page.goto(every_state.url + "/?state=not_found")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_not_found"])
    assert tab.errors == tab.dialogs == []


def test_it_reads_on_a_phone(every_state: Daemon, open_tab: OpenTab) -> None:
    tab = open_tab(every_state.url + "/?state=critical", width=390, height=844)
    page = tab.page
    row = page.locator(ROWS)
    expect(row).to_have_count(1)
    # One card per agent, nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = row.bounding_box()
    assert box is not None
    assert box["width"] <= 390
    expect(row.locator("td.c-id")).to_be_visible()
    assert tab.errors == []


# --- the demo, as the README shows it --------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    with running_demo(tmp_path) as url:
        yield url


def test_the_demo_shows_every_state(demo: str, open_tab: OpenTab, tmp_path: Path) -> None:
    """What `make screenshot` photographs; the picture goes to a temporary folder here."""
    tab = open_tab(demo)
    picture = tmp_path / "status-page.png"
    photograph(tab.page, demo, picture)
    expect(tab.page.locator(ROWS)).to_have_count(DEMO_AGENTS)
    assert picture.stat().st_size > 20_000
    assert tab.errors == tab.dialogs == []


# --- accessibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_wcag_21_aa_violation_with_every_state_shown(
    every_state: Daemon, open_tab: OpenTab, axe_script: Path, scheme: str
) -> None:
    tab = open_tab(every_state.url, bypass_csp=True, color_scheme=scheme)
    page = tab.page
    expect(page.locator(f"{ROWS} .badge")).to_have_text([label for _, label in EXPECTED])
    tab.wait_for_refresh()  # the swapped-in regions, not only the first render
    assert axe_violations(page, axe_script) == []
    # Unchecked toggles, an empty result and a filled filter box are checked too.
    page.locator("label.tile.s-ok").click()
    page.locator("#q").fill("nothing-like-this")
    expect(page.locator("#empty")).to_be_visible()
    assert axe_violations(page, axe_script) == []
    assert tab.errors == []


def test_the_filter_and_the_toggles_work_from_the_keyboard(
    every_state: Daemon, open_tab: OpenTab
) -> None:
    tab = open_tab(every_state.url)
    page = tab.page
    expect(page.locator(ROWS)).to_have_count(10)
    page.evaluate("window.notReloaded = true")
    focused = "document.activeElement.id || document.activeElement.value"

    # Tab reaches the state toggles first, in order, with a visible focus ring.
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "expired"
    ring = page.locator("label.tile.s-expired").evaluate("e => getComputedStyle(e).outlineStyle")
    assert ring == "solid"
    for _ in range(6):
        page.keyboard.press("Tab")
    assert page.evaluate(focused) == "ok"
    page.keyboard.press("Space")
    expect(page.locator("label.tile.s-ok input")).not_to_be_checked()
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(IDS[:7])
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")  # unknown off too
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(IDS[:6])

    # Then the filter box: typing filters, Enter applies without leaving the page.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "q"
    page.keyboard.type("a_crit")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_critical"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"state=warning&q=a_crit$"))
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["a_critical"])
    assert page.evaluate("window.notReloaded") is True
    assert tab.errors == []


# --- many agents ------------------------------------------------------------------------------

MANY = 10_000
NOW = time.time()


class InProcess:
    """The status routes over a store of `MANY` agents, served by uvicorn from a thread."""

    def __init__(self) -> None:
        store = Store()
        keys = [AgentKey("prod", f"agent_{i:05d}") for i in range(MANY)]
        store.sync(Target(key, f"bot {i}") for i, key in enumerate(keys))
        for i, key in enumerate(keys):
            expires = NOW + 3600 if i == MANY - 1 else NOW + 30 * DAY + i * 60
            store.record(LinkAnswer(Observation(Kind.LINK, expires), "f"), key, NOW)
        config = Config.model_validate({"agents": [{"id": "agent_00000"}]})
        health = Health(last_cycle=NOW, config_reload_at=NOW)
        routes = status_routes(store, health, ConfigHolder(config), time.time)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(Starlette(routes=routes), log_config=None, lifespan="off")
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )


@pytest.fixture(scope="module")
def many_agents() -> Iterator[str]:
    served = InProcess()
    served.thread.start()
    wait_until(lambda: served.server.started, what="the in-process status page")
    yield served.url
    served.server.should_exit = True
    served.thread.join(10)


def test_ten_thousand_agents_page_and_filter(many_agents: str, open_tab: OpenTab) -> None:
    tab = open_tab(many_agents)
    page = tab.page
    expect(page.locator(ROWS)).to_have_count(PAGE_SIZE)
    expect(page.locator(f"{ROWS} td.c-id").first).to_have_text(f"agent_{MANY - 1:05d}")
    expect(page.locator("#pager")).to_contain_text("Page 1 of 100")

    # The pager swaps the rows in place and keeps the page in the URL.
    page.locator("#pager a[rel=next]").click()
    expect(page.locator("#pager")).to_contain_text("Page 2 of 100")
    expect(page).to_have_url(re.compile(r"/\?page=2$"))
    expect(page.locator(f"{ROWS} td.c-id").first).to_have_text("agent_00099")
    # From the keyboard too, and the focus stays on the pager.
    page.locator("#pager a[rel=next]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#pager")).to_contain_text("Page 3 of 100")
    assert page.evaluate("document.activeElement.rel") == "next"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#pager")).to_contain_text("Page 2 of 100")
    assert page.evaluate("document.activeElement.rel") == "prev"

    # The filter finds any agent, however far down, and starts again from page 1.
    page.locator("#q").fill("agent_09876")
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["agent_09876"])
    expect(page).to_have_url(re.compile(r"/\?q=agent_09876$"))
    expect(page.locator("#pager")).to_be_hidden()
    tab.wait_for_refresh()
    expect(page.locator(f"{ROWS} td.c-id")).to_have_text(["agent_09876"])
    assert tab.errors == []
