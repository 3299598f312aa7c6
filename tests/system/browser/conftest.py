"""A real headless Chromium (Debian's `chromium`) driven by Playwright, one context per tab."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright

from tests.system.browser.screenshot import LAUNCH_ARGS
from tests.tooling import require_tool

AXE = Path(__file__).resolve().parents[3] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# The page refreshes every 2 s when the poll interval is 1 s: leave room for a few rounds.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_tool("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A page, and what it complained about: console errors, uncaught errors, dialogs."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def refreshes(self) -> int:
        """How many times the script has refreshed the page from the JSON API."""
        value = self.page.locator("body").get_attribute("data-refreshes")
        return int(value or 0)

    def wait_for_refresh(self) -> None:
        """Until the script has fetched and rendered the API once more (no sleep)."""
        self.page.wait_for_function(
            "n => Number(document.body.dataset.refreshes || 0) >= n",
            arg=self.refreshes() + 1,
            timeout=10_000,
        )


OpenTab = Callable[..., Tab]


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[OpenTab]:
    contexts = []

    def open_tab(
        url: str,
        *,
        javascript: bool = True,
        width: int = 1280,
        height: int = 800,
        bypass_csp: bool = False,
        color_scheme: Literal["light", "dark"] = "light",
    ) -> Tab:
        # `bypass_csp` only lets axe-core be injected; every other tab keeps the page's CSP.
        context = browser.new_context(
            java_script_enabled=javascript,
            viewport={"width": width, "height": height},
            bypass_csp=bypass_csp,
            color_scheme=color_scheme,
        )
        contexts.append(context)
        tab = Tab(context.new_page())
        tab.page.on("console", tab._console)
        tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.page.on("dialog", tab._dialog)
        tab.page.goto(url)
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from npm (`make node`): skipped without it locally, a failure in CI."""
    if not AXE.is_file():
        message = f"{AXE} is missing: run `make node` (npm ci)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AXE


def axe_violations(page: Page, axe: Path) -> list[dict[str, Any]]:
    """WCAG 2.1 A and AA violations on the page as it is now, as axe-core reports them."""
    page.add_script_tag(path=str(axe))
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return result.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => [n.target.join(" "), n.failureSummary]),
            }));
        }""",
        WCAG_21_AA,
    )
    return found
