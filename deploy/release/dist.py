"""`make dist`: everything a release publishes, built, checked and summed in one directory.

    .venv/bin/python deploy/release/dist.py [--outdir dist] [--keep-venv DIR]

1. the sdist and the wheel (`python -m build`: the wheel is built from the sdist), checked
   by `twine check --strict`;
2. the Helm chart packaged by Helm's own engine (helm-python-sdk), its version and
   appVersion the project's;
3. a CycloneDX SBOM (`cyclonedx-py environment`) of a throwaway virtualenv holding only the
   wheel and its pinned runtime dependencies (requirements.txt beside this file), exactly
   what the image installs; `pip check` first proves the pins satisfy every requirement;
4. `SHA256SUMS` over all of them (`sha256sum -c SHA256SUMS` verifies them).

Reproducible: SOURCE_DATE_EPOCH is the commit's time (`git log -1 --format=%ct`, or the
environment's SOURCE_DATE_EPOCH outside a checkout). The build backend is pinned in
pyproject.toml and honours it; Helm takes each file's modification time, so the chart is
packaged from a copy whose times are set to it. Built twice from one commit, the sdist, the
wheel, the chart and the SBOM are the same bytes. The SBOM's venv needs the dependencies
from the package index (or pip's cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "elevenlabs-link-monitor"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
PROJECT = "elevenlabs-link-monitor"
SUMS = "SHA256SUMS"


class DistError(Exception):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path
    chart: Path
    sbom: Path
    sums: Path
    epoch: int  # the SOURCE_DATE_EPOCH they were built with

    def published(self) -> list[Path]:
        return [self.sdist, self.wheel, self.chart, self.sbom]


def project_version(root: Path = ROOT) -> str:
    """monitor/__init__.py's __version__: the one place it is written."""
    text = (root / "monitor" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise DistError("no __version__ in monitor/__init__.py")
    return match[1]


def source_date_epoch(root: Path = ROOT) -> int:
    """The commit's time; outside a checkout, the environment's SOURCE_DATE_EPOCH."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    result = _run(["git", "-C", str(root), "log", "-1", "--format=%ct"], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise DistError("not a git checkout: set SOURCE_DATE_EPOCH to the source's time")
    return int(result.stdout)


def uncommitted(root: Path = ROOT) -> list[str]:
    """Tracked files changed since the commit whose time the artifacts carry."""
    result = _run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"])
    return result.stdout.splitlines()


def _run(
    args: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise DistError(
            f"{' '.join(args[:4])}... failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def _env(epoch: int) -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PYTHONDONTWRITEBYTECODE": "1"}


def build_python(root: Path, outdir: Path, epoch: int) -> tuple[Path, Path]:
    """`python -m build`: the sdist, then the wheel from the unpacked sdist."""
    outdir.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "build", "--outdir", str(outdir), str(root)], env=_env(epoch))
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return sdist, wheel


def twine_check(paths: Sequence[Path]) -> None:
    _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)])


def package_chart(chart_dir: Path, outdir: Path, version: str, epoch: int) -> Path:
    """`helm package` through Helm's Go SDK, from a copy whose files all carry `epoch`.

    Helm writes each file's modification time into the archive (and takes no
    SOURCE_DATE_EPOCH); everything else it writes is already deterministic (sorted entries,
    uid 0, mode 0644, a fixed gzip header). So the bytes stay Helm's own, not a repack.
    """
    import helm_python
    import yaml

    metadata = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    found = {key: str(metadata.get(key)) for key in ("version", "appVersion")}
    if found != {"version": version, "appVersion": version}:
        raise DistError(f"Chart.yaml says {found}; the project is {version}: make them equal")
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / chart_dir.name
        shutil.copytree(chart_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for path in (copy, *copy.rglob("*")):
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        packaged = Path(helm_python.package(copy, destination=outdir))
    loaded = helm_python.Chart.load(packaged).metadata
    if (loaded["version"], loaded["appVersion"]) != (version, version):
        raise DistError(f"{packaged.name}: version {loaded['version']}, {loaded['appVersion']}")
    return packaged


def install_runtime(venv: Path, wheel: Path, requirements: Path = REQUIREMENTS) -> Path:
    """A virtualenv holding only the wheel and its pinned dependencies, as the image's.

    No pip inside (`--without-pip`; this interpreter's pip installs into it), `--no-deps`
    so nothing outside the pins comes in, then `pip check`: the pins satisfy every
    requirement. Returns the virtualenv's interpreter.
    """
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = ["install", "--quiet", "--no-deps", "-r", str(requirements), str(wheel)]
    _run([*pip, *install])
    try:
        _run([*pip, "check"])
    except DistError as error:
        hint = "after a change of dependencies: .venv/bin/python deploy/release/pins.py --write"
        raise DistError(f"{requirements.name} is not whole ({hint})\n{error}") from error
    return python


def write_sbom(python: Path, outdir: Path, version: str, epoch: int, root: Path = ROOT) -> Path:
    """CycloneDX 1.6 JSON of the environment of `python`; the project is the root component."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    path = outdir / f"{PROJECT}-{version}.cdx.json"
    _run(
        [
            sys.executable, "-m", "cyclonedx_py", "environment",
            "--pyproject", str(root / "pyproject.toml"), "--mc-type", "application",
            "--sv", "1.6", "--output-reproducible", "--no-validate",
            "--output-file", str(path), str(python),
        ],
        env=_env(epoch),
    )  # fmt: skip
    bom = json.loads(path.read_text(encoding="utf-8"))
    # The version is dynamic in pyproject.toml (hatch reads it), so cyclonedx-py leaves it out.
    component = bom["metadata"]["component"]
    component["version"] = version
    component["purl"] = f"pkg:pypi/{PROJECT}@{version}"
    text = json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    invalid = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if invalid is not None:
        raise DistError(f"the SBOM does not validate: {invalid}")
    path.write_text(text, encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sums(paths: Sequence[Path], outdir: Path) -> Path:
    """`sha256sum` format: `sha256sum -c SHA256SUMS` in the directory checks every file."""
    sums = outdir / SUMS
    lines = [f"{sha256(path)}  {path.name}\n" for path in sorted(paths, key=lambda p: p.name)]
    sums.write_text("".join(lines), encoding="utf-8")
    return sums


def build(outdir: Path, *, root: Path = ROOT, keep_venv: Path | None = None) -> Artifacts:
    """Every artifact into `outdir`, which must be empty or absent."""
    if outdir.exists() and any(outdir.iterdir()):
        raise DistError(f"{outdir} is not empty: remove it first (make dist does)")
    outdir.mkdir(parents=True, exist_ok=True)
    version = project_version(root)
    epoch = source_date_epoch(root)
    sdist, wheel = build_python(root, outdir, epoch)
    for path in (sdist, wheel):
        if f"-{version}" not in path.name:
            raise DistError(f"{path.name} is not version {version}")
    twine_check([sdist, wheel])
    chart = package_chart(root / CHART_DIR.relative_to(ROOT), outdir, version, epoch)
    with tempfile.TemporaryDirectory() as scratch:
        venv = keep_venv if keep_venv is not None else Path(scratch) / "venv"
        python = install_runtime(venv, wheel)
        sbom = write_sbom(python, outdir, version, epoch, root)
    artifacts = Artifacts(sdist, wheel, chart, sbom, outdir / SUMS, epoch)
    write_sums(artifacts.published(), outdir)
    return artifacts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument(
        "--keep-venv", type=Path, help="make the SBOM's virtualenv here and keep it"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        artifacts = build(args.outdir, keep_venv=args.keep_venv)
        changed = uncommitted()
    except DistError as error:
        print(f"dist.py: {error}", file=sys.stderr)
        return 1
    for path in (*artifacts.published(), artifacts.sums):
        print(f"{path.stat().st_size:>9}  {path}")
    elapsed = time.monotonic() - started
    print(f"built in {elapsed:.1f} s; SOURCE_DATE_EPOCH={artifacts.epoch}")
    if changed:
        print(
            f"dist.py: {len(changed)} tracked files differ from the commit: these artifacts "
            "are not the commit's",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
