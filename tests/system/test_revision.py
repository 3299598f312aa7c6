"""build_info's revision in a real git checkout: the HEAD that git itself reports."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.revision import REVISION_ENV, revision

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_lookup() -> Iterator[None]:
    revision.cache_clear()
    yield
    revision.cache_clear()


def test_a_source_checkout_reports_its_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REVISION_ENV, raising=False)
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(
        [git, "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    found = revision()
    assert len(found) == 12
    assert head.startswith(found)
