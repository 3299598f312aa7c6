"""The source revision this build came from, for the build_info metric."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

REVISION_ENV = "MONITOR_REVISION"
UNKNOWN = "unknown"

# A label value an operator can paste into `git show`; anything else is not trusted.
_SAFE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def revision() -> str:
    """`$MONITOR_REVISION` (set when the image is built), else the git checkout's HEAD, else unknown."""
    from_env = os.environ.get(REVISION_ENV, "").strip()
    if from_env:
        return from_env if _SAFE.fullmatch(from_env) else UNKNOWN
    return _git_head(_SOURCE_ROOT)


def _git_head(root: Path) -> str:
    # Only for a source checkout (an editable install): an installed wheel has no .git beside
    # it, and then no process is started at all.
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return UNKNOWN
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [git, "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    head = done.stdout.strip()
    return head if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", head) else UNKNOWN
