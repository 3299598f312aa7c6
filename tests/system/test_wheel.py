"""The wheel as pip builds it ships the status page's templates and static files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from monitor.web.status import assets
from monitor.web.status.assets import STATIC_FILES


def test_the_wheel_ships_the_templates_and_static_files(tmp_path: Path) -> None:
    root = Path(assets.__file__).parents[3]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in STATIC_FILES:
        assert f"monitor/web/static/{name}" in names
    for name in ("page.html", "partial.html", "regions.html"):
        assert f"monitor/web/templates/{name}" in names
    assert not [n for n in names if "node_modules" in n or "statuspage_assets" in n]
