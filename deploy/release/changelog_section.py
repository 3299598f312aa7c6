#!/usr/bin/env python3
"""Print one version's section of CHANGELOG.md: the body of the GitHub release.

    python3 deploy/release/changelog_section.py 0.2.0        # or v0.2.0, or Unreleased
    python3 deploy/release/changelog_section.py 0.2.0 --changelog path/to/CHANGELOG.md

The section is what lies under the version's `## [X.Y.Z] - YYYY-MM-DD` heading, up to the
next `## ` heading or the link references at the end ("[X.Y.Z]: https://..."). A version
with no heading, or a heading with nothing under it, is an error (exit 1, one line).
The standard library only: the release workflow runs it before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
LINK_REFERENCE = re.compile(r"^\[[^\]]+\]:\s")


class SectionError(Exception):
    """The CHANGELOG has no section for the version, or an empty one."""


def heading(line: str) -> tuple[str, str] | None:
    """`## [0.2.0] - 2026-12-01` -> ("0.2.0", "2026-12-01"); `## [Unreleased]` -> ("Unreleased", "")."""
    match = re.fullmatch(r"## \[([^\]]+)\](?: - (\S+))?\s*", line)
    if match is None:
        return None
    return match[1], match[2] or ""


def section(text: str, version: str) -> str:
    """The body under the version's heading, without surrounding blank lines."""
    version = version.removeprefix("v") if re.fullmatch(r"v\d.*", version) else version
    lines = text.splitlines()
    start = next(
        (
            index
            for index, line in enumerate(lines)
            if (found := heading(line)) and found[0] == version
        ),
        None,
    )
    if start is None:
        raise SectionError(f"CHANGELOG.md has no '## [{version}]' section")
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("## ") or LINK_REFERENCE.match(line):
            break
        body.append(line)
    result = "\n".join(body).strip("\n")
    if not result.strip():
        raise SectionError(f"CHANGELOG.md's '## [{version}]' section is empty")
    return result + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print one version's section of CHANGELOG.md (the GitHub release's body)."
    )
    parser.add_argument("version", help="X.Y.Z, vX.Y.Z or Unreleased")
    parser.add_argument("--changelog", type=Path, default=CHANGELOG, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(section(args.changelog.read_text(encoding="utf-8"), args.version))
    except SectionError as error:
        print(f"changelog_section: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
