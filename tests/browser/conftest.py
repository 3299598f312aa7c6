"""A real headless Chromium (Debian's `chromium`) driven by Playwright, one context per tab."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright

from tests.tooling import require_tool

# Quiet and deterministic: no updates, no sync, no GPU, nothing phoning home.
LAUNCH_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
]
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

    def open_tab(url: str, *, javascript: bool = True, width: int = 1280, height: int = 800) -> Tab:
        context = browser.new_context(
            java_script_enabled=javascript, viewport={"width": width, "height": height}
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
