"""deploy/ and benchmarks/README.md point at the docs/ pages, not at README sections that moved
there (issue 21, finding 4): Failure behaviour, the Configuration reference, Performance and
the state table now live in docs/. Every docs/ page they name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.system.deploy._helpers import DEPLOY, REPO

MOVED = r"(?:Failure behaviour|Configuration reference|Performance|state table)"
# A moved section named next to the README, either way round, within one sentence.
STALE = re.compile(rf"README(?:\.md)?[^.]{{0,60}}?{MOVED}|{MOVED}[^.]{{0,60}}?README", re.I)
DOCS_PAGE = re.compile(r"\bdocs/([\w.-]+\.md)")


def _files() -> list[Path]:
    found = [REPO / "benchmarks" / "README.md"]
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.suffix in {
            ".md",
            ".yml",
            ".yaml",
            ".json",
            ".py",
            ".tpl",
            ".txt",
        }:
            found.append(path)
    return found


def _prose(path: Path) -> str:
    """The file's text with line breaks and comment markers folded, so wrapped lines read on."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_pointer_to_a_readme_section_that_moved_to_docs(path: Path) -> None:
    stale = [match.group(0) for match in STALE.finditer(_prose(path))]
    assert stale == [], f"{path.relative_to(REPO)}: point at docs/ instead: {stale}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_docs_page_named_exists(path: Path) -> None:
    for page in DOCS_PAGE.findall(path.read_text(encoding="utf-8")):
        assert (REPO / "docs" / page).is_file(), f"{path.relative_to(REPO)}: no docs/{page}"


def test_the_pages_pointed_at_are_the_ones_that_hold_the_sections() -> None:
    for page, heading in (
        ("failure-behaviour.md", "## Cycles and limits"),
        ("configuration.md", "# Configuration"),
        ("performance.md", "## Where the time and memory go"),
        ("metrics.md", "## States"),
    ):
        assert heading in (REPO / "docs" / page).read_text(encoding="utf-8"), page
