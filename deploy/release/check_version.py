#!/usr/bin/env python3
"""Refuse a release whose pieces disagree: the tag, the project's version, the chart, the changelog.

    python3 deploy/release/check_version.py v0.2.0      # the release workflow: "$GITHUB_REF_NAME"

The tag must be `v` + the version written in monitor/__init__.py; Chart.yaml's `version` and
`appVersion`, the Dockerfile's `ARG VERSION=` default and CHANGELOG.md (a dated
`## [X.Y.Z] - YYYY-MM-DD` section with something in it, and its `[X.Y.Z]: ...vX.Y.Z` link)
must all say the same version. Each disagreement is one line on stderr; exit 1 if any.
The standard library only: the release workflow runs it first, before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from changelog_section import SectionError, heading, section

REPO = Path(__file__).resolve().parents[2]
VERSION = re.compile(r"\d+\.\d+\.\d+")
DATE = re.compile(r"\d{4}-\d\d-\d\d")


def project_version(root: Path) -> str | None:
    """`__version__` in monitor/__init__.py, read as hatch reads it (no import)."""
    text = (root / "monitor" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.M)
    return match[1] if match else None


def chart_field(root: Path, key: str) -> str | None:
    """A top-level scalar of Chart.yaml (`version`, `appVersion`), quotes stripped."""
    text = (root / "deploy" / "helm" / "elevenlabs-link-monitor" / "Chart.yaml").read_text(
        encoding="utf-8"
    )
    match = re.search(rf"""^{key}:\s*["']?([^"'\s#]+)["']?\s*(?:#.*)?$""", text, re.M)
    return match[1] if match else None


def dockerfile_version(root: Path) -> str | None:
    """The default of the Dockerfile's `ARG VERSION=`, if it has one."""
    text = (root / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^\s*ARG\s+VERSION=[\"']?([^\"'\s]+)", text, re.M)
    return match[1] if match else None


def changelog_problems(root: Path, version: str) -> list[str]:
    text = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    dated = [
        found
        for line in text.splitlines()
        if (found := heading(line)) and found[0] == version and DATE.fullmatch(found[1])
    ]
    if not dated:
        return [
            f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section: move [Unreleased] there"
        ]
    problems: list[str] = []
    try:
        section(text, version)
    except SectionError as error:
        problems.append(str(error))
    link = re.search(rf"^\[{re.escape(version)}\]:\s*\S*v{re.escape(version)}\s*$", text, re.M)
    if link is None:
        problems.append(f"CHANGELOG.md has no '[{version}]: ...v{version}' link at its end")
    return problems


def problems(tag: str, root: Path = REPO) -> list[str]:
    """Every way the tag and the release's pieces disagree; empty when they all agree."""
    version = project_version(root)
    if version is None or not VERSION.fullmatch(version):
        return [f"monitor/__init__.py has no X.Y.Z __version__ (found {version!r})"]
    found: list[str] = []
    if tag != f"v{version}":
        found.append(
            f"tag {tag!r} is not 'v{version}', the project's version (monitor/__init__.py)"
        )
    for key in ("version", "appVersion"):
        value = chart_field(root, key)
        if value != version:
            found.append(f"Chart.yaml's {key} is {value!r}, not the project's {version!r}")
    docker = dockerfile_version(root)
    if docker is not None and docker != version:
        found.append(f"the Dockerfile's ARG VERSION is {docker!r}, not the project's {version!r}")
    found.extend(changelog_problems(root, version))
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: check_version.py vX.Y.Z", file=sys.stderr)
        return 2
    found = problems(args[0])
    for line in found:
        print(f"check_version: {line}", file=sys.stderr)
    if found:
        return 1
    print(f"{args[0]}: the project, the chart, the Dockerfile and CHANGELOG.md agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
