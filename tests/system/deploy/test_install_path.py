"""The image's install path, outside Docker: a clean virtualenv built as the Dockerfile builds it.

The builder stage's ARG, ENV, COPY and RUN instructions are read from the Dockerfile and
replayed in a temporary directory (everything under `/opt/` moves there: the wheel in
`/opt/dist`, the image's virtualenv `/opt/venv`), so a change to the Dockerfile is tested as
written. The builder's wheel has to be the one `make dist` publishes; the virtualenv has to
hold it and the pinned runtime dependencies and nothing else; its console script has to
report its version, validate the shipped configs, and run the demo daemon without writing
bytecode.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.deploy._helpers import (
    REPO,
    SYSTEMD_DIR,
    dockerfile_lines,
    output,
    release_script,
    run,
)

pytestmark = pytest.mark.timeout(240)

DOCKERFILE = REPO / "Dockerfile"
IMAGE_VENV = "/opt/venv"
IMAGE_WHEELS = "/opt/dist"
REQUIREMENTS = REPO / "deploy" / "release" / "requirements.txt"
SCRIPT = "elevenlabs-link-monitor"
CONFIGS = [
    REPO / "config.yaml",
    SYSTEMD_DIR / "config.yaml",
]


@dataclass
class BuilderStage:
    env: dict[str, str]
    workdir: str
    copies: list[list[str]]  # COPY sources..., destination
    runs: list[str]


def _builder_stage() -> BuilderStage:
    stage: BuilderStage | None = None
    for line in dockerfile_lines(DOCKERFILE.read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            if stage is not None:
                break  # the runtime stage: only the builder installs anything
            assert rest.endswith(" AS builder"), f"the first stage is not the builder: {rest}"
            stage = BuilderStage({}, "/", [], [])
        elif stage is None:
            continue
        elif keyword in {"ENV", "ARG"}:
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                stage.env[name] = value
        elif keyword == "WORKDIR":
            stage.workdir = rest
        elif keyword == "COPY":
            parts = shlex.split(rest)
            assert not any(p.startswith("--") for p in parts), f"unexpected COPY flags: {rest}"
            stage.copies.append(parts)
        elif keyword == "RUN":
            stage.runs.append(rest)
    assert stage is not None, "no builder stage in the Dockerfile"
    return stage


def _require_venv_support() -> None:
    if importlib.util.find_spec("ensurepip") is None:
        message = "this Python cannot create virtualenvs with pip (no ensurepip)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _project_version() -> str:
    """The one place the version is written (pyproject.toml reads it through hatch)."""
    text = (REPO / "monitor" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None
    return match[1]


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if not path.is_dir()}


@dataclass
class Replayed:
    venv: Path  # the image's /opt/venv
    wheel: Path  # the builder's wheel, from /opt/dist
    epoch: int  # the SOURCE_DATE_EPOCH it was built with


def _replay(root: Path, stage: BuilderStage, env: dict[str, str]) -> None:
    """Every builder RUN, `python` being this interpreter and `/opt/` under `root`."""
    workdir = root / "src" / stage.workdir.lstrip("/")
    assert stage.runs, "the builder has no RUN instructions"
    for instruction in stage.runs:
        for command in instruction.split("&&"):
            words: list[str] = []
            for written in shlex.split(command):
                word = written.replace("/opt/", f"{root}/opt/")
                # The shell's globbing (`/opt/dist/*.whl`), which Docker's RUN has.
                words.extend(sorted(glob.glob(word)) or [word] if "*" in word else [word])
            if words[0] == "python":
                words[0] = sys.executable
            result = subprocess.run(
                words, cwd=workdir, env=env, capture_output=True, text=True, timeout=240,
                check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"{shlex.join(words)}\n{output(result)}"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    """The builder stage replayed, with the commit's time as `make dist` builds with."""
    _require_venv_support()
    stage = _builder_stage()
    root = tmp_path_factory.mktemp("install")
    src = root / "src"

    # The build context holds only what the builder COPYs (caches left out, as .dockerignore).
    workdir = src / stage.workdir.lstrip("/")
    workdir.mkdir(parents=True)
    for *sources, destination in stage.copies:
        target = workdir / destination
        into_directory = destination.endswith("/") or len(sources) > 1
        for source in sources:
            origin = REPO / source
            assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
            if origin.is_dir():  # Docker copies a directory's contents, not the directory
                shutil.copytree(
                    origin,
                    target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True,
                )
            else:
                file_target = target / origin.name if into_directory else target
                file_target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, file_target)

    epoch = release_script("dist").source_date_epoch(REPO)
    assert isinstance(epoch, int)
    # As `docker build --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"`.
    env = {**os.environ, **stage.env, "SOURCE_DATE_EPOCH": str(epoch)}
    env.pop("VIRTUAL_ENV", None)
    # The test's own venv must not leak in: the new venv starts from the base interpreter.
    env.pop("PYTHONPATH", None)
    _replay(root, stage, env)
    venv_dir = root / IMAGE_VENV.lstrip("/")
    assert (venv_dir / "bin" / SCRIPT).exists(), "the install did not create the console script"
    (wheel,) = (root / IMAGE_WHEELS.lstrip("/")).glob("*.whl")
    return Replayed(venv_dir, wheel, epoch)


@pytest.fixture(scope="module")
def venv(replayed: Replayed) -> Path:
    """The image's virtualenv, as the builder stage makes it; returns its root."""
    return replayed.venv


def _script(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # From an unrelated directory: the repo's `monitor` package must not be importable.
    return run([str(venv / "bin" / SCRIPT), *args], cwd=cwd)


def test_builder_installs_the_wheel_and_the_pins_only() -> None:
    stage = _builder_stage()
    commands = " ".join(" && ".join(stage.runs).split())
    assert f"-m build --wheel --outdir {IMAGE_WHEELS} ." in commands
    assert f"python -m venv --without-pip {IMAGE_VENV}" in commands
    install = f"python -m pip --python {IMAGE_VENV}/bin/python install --no-cache-dir --no-deps"
    assert f"{install} -r deploy/release/requirements.txt {IMAGE_WHEELS}/*.whl" in commands
    assert f"python -m pip --python {IMAGE_VENV}/bin/python check" in commands
    assert "compileall" in commands
    assert "SOURCE_DATE_EPOCH" in stage.env
    copied = {source for *sources, _ in stage.copies for source in sources}
    assert {"pyproject.toml", "monitor", "deploy/release/requirements.txt"} <= copied


def test_the_builders_wheel_is_the_published_wheel(replayed: Replayed, tmp_path: Path) -> None:
    """With the commit's time, the image's wheel is `make dist`'s, byte for byte."""
    dist = release_script("dist")
    _, wheel = dist.build_python(REPO, tmp_path, replayed.epoch)
    assert wheel.name == replayed.wheel.name
    assert wheel.read_bytes() == replayed.wheel.read_bytes()


def test_the_venv_holds_the_wheel_and_its_pins_and_nothing_else(venv: Path) -> None:
    (site_packages,) = venv.glob("lib/python3*/site-packages")
    installed = {
        dist.metadata["Name"].lower().replace("_", "-"): dist.version
        for dist in importlib.metadata.distributions(path=[str(site_packages)])
    }
    pinned = dict(
        line.split("==")
        for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert installed == {**pinned, SCRIPT: _project_version()}
    assert not (venv / "bin" / "pip").exists(), "pip does not ship in the image's venv"


def test_version(venv: Path, tmp_path: Path) -> None:
    result = _script(venv, "--version", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == f"{SCRIPT} {_project_version()}"
    assert result.stdout.strip() == "elevenlabs-link-monitor 0.1.0"
    # The wheel's metadata carries the same version, read from monitor/__init__.py.
    code = "import importlib.metadata as m; print(m.version('elevenlabs-link-monitor'))"
    result = run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert result.stdout.strip() == _project_version(), output(result)


def test_runs_the_installed_package_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    code = "import monitor, sys; print(monitor.__file__); print(sys.prefix)"
    result = run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    module_file, prefix = result.stdout.split()
    assert Path(prefix) == venv
    assert Path(module_file).is_relative_to(venv), module_file
    assert "site-packages" in Path(module_file).parts


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_validate_config(venv: Path, tmp_path: Path, config: Path) -> None:
    result = _script(venv, "validate-config", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "valid" in result.stdout


def test_every_module_is_precompiled(venv: Path) -> None:
    """The runtime root is read-only: every module needs its bytecode from build time."""
    (site_packages,) = venv.glob("lib/python3*/site-packages")
    package = site_packages / "monitor"
    assert package.is_dir()
    sources = list(site_packages.rglob("*.py"))
    assert any(path.is_relative_to(package) for path in sources)
    missing = [
        path for path in sources if not Path(importlib.util.cache_from_source(str(path))).exists()
    ]
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"


def test_daemon_serves_and_stops_without_writing(venv: Path, tmp_path: Path) -> None:
    """`demo` from the installed venv: /healthz answers, SIGTERM exits 0, no file appears.

    PYTHONDONTWRITEBYTECODE is deliberately unset: had compileall missed a module that the
    daemon imports, Python would write its bytecode into the venv, which fails the test.
    """
    before = _files(venv)
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONDONTWRITEBYTECODE"}}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(venv / "bin" / SCRIPT), "demo", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        address = _wait_for_address(log, proc)
        assert address.startswith("http://127.0.0.1:"), address
        with urllib.request.urlopen(f"{address}/healthz", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        with urllib.request.urlopen(f"{address}/metrics", timeout=5) as response:  # noqa: S310
            assert b"elevenlabs_agent_link_state" in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text(encoding="utf-8", errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    created = sorted(str(path.relative_to(venv)) for path in _files(venv) - before)
    assert not created, f"the daemon wrote into its install: {created[:10]}"


def _wait_for_address(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") == "monitor_started":
                address: str = line["address"]
                return address
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    text = log.read_text(encoding="utf-8", errors="replace")
    raise AssertionError(f"demo did not start (exit {proc.poll()}):\n{text}")
