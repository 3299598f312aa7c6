"""Refresh the README's screenshot from the demo, in Debian's Chromium (`make screenshot`).

    .venv/bin/python -m tests.system.browser.screenshot docs/status-page.png

The browser tests take the same picture into a temporary folder, so the tracked one changes
only when somebody asks for it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

from tests.daemon import monitor_cmd, wait_until

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
DEMO_AGENTS = 9
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_demo(folder: Path) -> Iterator[str]:
    """`monitor demo` on a free loopback port, until it is ready; yields its URL."""
    port = _free_port()
    log_path = folder / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            monitor_cmd("demo", "--host", "127.0.0.1", "--port", str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(log_path.read_text())
            return _status(url + "/readyz") == 200

        wait_until(ready, what="the demo's readiness")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def photograph(page: Page, url: str, target: Path) -> None:
    """The demo's page once the script has refreshed it, as a PNG at `target`."""
    page.goto(url)
    expect(page.locator("#agents tbody tr")).to_have_count(DEMO_AGENTS)
    page.wait_for_function(
        "() => Number(document.body.dataset.refreshes || 0) >= 1", timeout=20_000
    )
    expect(page.locator("#live")).to_contain_text("Live · Updated")
    expect(page.locator("#agents tbody tr .badge").first).to_have_text("Expired")
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m tests.system.browser.screenshot PATH.png", file=sys.stderr)
        return 2
    target = Path(sys.argv[1])
    chromium = shutil.which("chromium")
    if chromium is None:
        print("error: chromium is not installed (make tools installs it)", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory() as folder,
        running_demo(Path(folder)) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            photograph(browser.new_page(viewport=VIEWPORT), url, target)
        finally:
            browser.close()
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
