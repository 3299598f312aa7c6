"""`make dist`: what a release publishes, checked, reproducible and installable.

The script `make dist` runs (deploy/release/dist.py) builds once per module into a
temporary directory, keeping the virtualenv its SBOM was made from: a fresh virtualenv
holding only the built wheel and its pinned runtime dependencies (installed from the
package index with `--no-deps`, as the image installs them; pip's cache makes it quick). A
second build from a copy of the sources, every file with another time and mode, gives the
same sdist, wheel and chart bytes. The packaged chart lints and renders as the chart
directory does, value set by value set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from monitor import __version__
from monitor.config.loading import parse_config
from tests.system.deploy._helpers import (
    CHART_DIR,
    RELEASE_DIR,
    REPO,
    SYSTEMD_DIR,
    assert_restricted,
    output,
    release_script,
    run,
)
from tests.system.deploy.test_helm import NAMESPACE, RELEASE, VALUE_SETS
from tests.tooling import require_tool

pytestmark = pytest.mark.timeout(240)

PROJECT = "elevenlabs-link-monitor"
WHEEL = f"elevenlabs_link_monitor-{__version__}-py3-none-any.whl"
SDIST = f"elevenlabs_link_monitor-{__version__}.tar.gz"
CHART = f"{PROJECT}-{__version__}.tgz"
SBOM = f"{PROJECT}-{__version__}.cdx.json"
REQUIREMENTS = RELEASE_DIR / "requirements.txt"
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}  # their CRDs' schemas are not bundled


@dataclass(frozen=True)
class Built:
    dist: Path
    venv: Path  # the SBOM's virtualenv: the wheel and its pinned dependencies only
    epoch: int


def _pins() -> dict[str, str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("dist")
    dist, venv = root / "dist", root / "venv"
    # The commit's time, read once: a commit landing during the build must not move it.
    epoch = _commit_time()
    script = RELEASE_DIR / "dist.py"
    result = subprocess.run(
        [sys.executable, str(script), "--outdir", str(dist), "--keep-venv", str(venv)],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    return Built(dist, venv, epoch)


def _commit_time() -> int:
    result = run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"])
    assert result.returncode == 0, output(result)
    return int(result.stdout)


def test_source_date_epoch_is_the_commits_time(monkeypatch: pytest.MonkeyPatch) -> None:
    dist = release_script("dist")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert dist.source_date_epoch(REPO) == _commit_time()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert dist.source_date_epoch(REPO) == 1700000000


# --- the artifacts ---------------------------------------------------------------------------


def test_make_dist_runs_the_script_into_an_ignored_dist() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    target = makefile[makefile.index("\ndist: venv") :].split("\n\n")[0]
    assert "rm -rf dist" in target
    assert "$(BIN)/python deploy/release/dist.py --outdir dist" in target
    ignored = run(["git", "-C", str(REPO), "check-ignore", "-q", f"dist/{WHEEL}"])
    assert ignored.returncode == 0, "dist/ must be ignored by git"


def test_dist_holds_the_release_and_its_checksums(built: Built) -> None:
    assert sorted(path.name for path in built.dist.iterdir()) == sorted(
        [SDIST, WHEEL, CHART, SBOM, "SHA256SUMS"]
    )
    sums = (built.dist / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == sorted([SDIST, WHEEL, CHART, SBOM])
    sha256sum = require_tool("sha256sum")
    result = run([sha256sum, "--check", "--strict", "SHA256SUMS"], cwd=built.dist)
    assert result.returncode == 0, output(result)
    assert result.stdout.count(": OK") == 4, output(result)


def test_twine_accepts_the_sdist_and_the_wheel(built: Built) -> None:
    result = run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.dist / SDIST),
         str(built.dist / WHEEL)]
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    assert result.stdout.count("PASSED") == 2, output(result)


def test_the_wheel_is_the_package_and_its_metadata(built: Built) -> None:
    with zipfile.ZipFile(built.dist / WHEEL) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"elevenlabs_link_monitor-{__version__}.dist-info/METADATA")
    assert {name.split("/")[0] for name in names} == {
        "monitor",
        f"elevenlabs_link_monitor-{__version__}.dist-info",
    }
    # The status page's package data travels with the code.
    assert any(name.startswith("monitor/web/templates/") for name in names)
    assert any(name.startswith("monitor/web/static/") for name in names)
    text = metadata.decode()
    assert f"\nVersion: {__version__}\n" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in project["dependencies"]:
        assert f"\nRequires-Dist: {Requirement(dependency)}\n" in text, dependency


def test_the_sdist_holds_only_the_listed_sources(built: Built) -> None:
    with tarfile.open(built.dist / SDIST) as sdist:
        tops = {name.split("/")[1] for name in sdist.getnames() if name.count("/")}
        mtimes = {member.mtime for member in sdist.getmembers()}
    assert tops == {
        "monitor", "config.yaml", "CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml",
        "PKG-INFO", ".gitignore",
    }  # fmt: skip
    assert mtimes == {built.epoch}


def test_the_sbom_lists_exactly_the_pinned_runtime_dependencies(built: Built) -> None:
    bom: dict[str, Any] = json.loads((built.dist / SBOM).read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    root = bom["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == (PROJECT, __version__, "application")
    assert root["purl"] == f"pkg:pypi/{PROJECT}@{__version__}"
    components = {
        component["purl"].removeprefix("pkg:pypi/").split("@")[0]: component["version"]
        for component in bom["components"]
    }
    assert components == _pins()
    # The dependency graph starts at the project's own requirements.
    graph = {entry["ref"]: entry.get("dependsOn", []) for entry in bom["dependencies"]}
    direct = {ref.split("==")[0].lower().replace("_", "-") for ref in graph[root["bom-ref"]]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert direct == {Requirement(d).name.lower() for d in project["dependencies"]}
    # Reproducible: the commit's time, no random serial number.
    assert "serialNumber" not in bom
    stamp = dt.datetime.fromisoformat(bom["metadata"]["timestamp"])
    assert stamp.timestamp() == built.epoch


# --- built twice ------------------------------------------------------------------------------

SOURCES = ["monitor", "config.yaml", "CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml"]


def test_a_second_build_gives_the_same_bytes(built: Built, tmp_path: Path) -> None:
    """The same sources with other file times and modes (another clone, another umask)."""
    dist = release_script("dist")
    source = tmp_path / "source"
    source.mkdir()
    for name in [*SOURCES, ".gitignore"]:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(
                origin, source / name, copy_function=shutil.copy,
                ignore=shutil.ignore_patterns("__pycache__"),
            )  # fmt: skip
        else:
            shutil.copy(origin, source / name)
    chart = source / "deploy" / "helm" / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart, copy_function=shutil.copy)
    later = built.epoch + 86_400
    for path in source.rglob("*"):
        path.chmod(0o775 if path.is_dir() else 0o664)
        os.utime(path, (later, later))
    out = tmp_path / "again"
    sdist, wheel = dist.build_python(source, out, built.epoch)
    packaged = dist.package_chart(chart, out, __version__, built.epoch)
    for first, second in ((SDIST, sdist), (WHEEL, wheel), (CHART, packaged)):
        assert second.name == first
        assert second.read_bytes() == (built.dist / first).read_bytes(), first


def test_the_chart_carries_the_commits_time_not_the_files(built: Built) -> None:
    with tarfile.open(built.dist / CHART) as chart:
        members = chart.getmembers()
        metadata = yaml.safe_load(chart.extractfile(f"{PROJECT}/Chart.yaml").read())  # type: ignore[union-attr]
    assert {member.mtime for member in members} == {built.epoch}
    assert {(member.uid, member.gid, member.mode) for member in members} == {(0, 0, 0o644)}
    assert (metadata["version"], metadata["appVersion"]) == (__version__, __version__)


# --- the fresh virtualenv ------------------------------------------------------------------------


def _script(built: Built, *args: str, cwd: Path) -> Any:
    # From an unrelated directory: the checkout's `monitor` package must not be importable.
    return run([str(built.venv / "bin" / PROJECT), *args], cwd=cwd)


def test_the_installed_wheel_reports_its_version(built: Built, tmp_path: Path) -> None:
    result = _script(built, "--version", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == f"{PROJECT} {__version__}"
    code = "import monitor; print(monitor.__file__)"
    result = run([str(built.venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert Path(result.stdout.strip()).is_relative_to(built.venv), output(result)


@pytest.mark.parametrize("config", [REPO / "config.yaml", SYSTEMD_DIR / "config.yaml"], ids=str)
def test_the_installed_wheel_validates_configs(built: Built, tmp_path: Path, config: Path) -> None:
    result = _script(built, "validate-config", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "valid" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("agents: [{id: a}]\npoll: {interval: soon}\n", encoding="utf-8")
    result = _script(built, "validate-config", "--config", str(broken), cwd=tmp_path)
    assert result.returncode == 2, output(result)


def test_the_pins_are_what_the_venv_holds(built: Built) -> None:
    """pins.py read from the fresh venv writes requirements.txt again: no pin missing or extra."""
    (site_packages,) = built.venv.glob("lib/python3*/site-packages")
    script = str(RELEASE_DIR / "pins.py")
    result = run([sys.executable, script, "--path", str(site_packages)])
    assert result.returncode == 0, output(result)
    assert result.stdout == REQUIREMENTS.read_text(encoding="utf-8")
    # Every direct requirement of the project is pinned within its range.
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        assert requirement.specifier.contains(pins[requirement.name.lower()]), line


def test_pins_missing_a_dependency_are_refused(built: Built, tmp_path: Path) -> None:
    """`pip check` after the `--no-deps` install: a pin left out fails the build, saying why."""
    dist = release_script("dist")
    partial = tmp_path / "requirements.txt"
    partial.write_text("# the pins forgotten\n", encoding="utf-8")
    with pytest.raises(dist.DistError) as refused:
        dist.install_runtime(tmp_path / "venv", built.dist / WHEEL, partial)
    assert "requires structlog, which is not installed" in str(refused.value)
    assert "pins.py --write" in str(refused.value)


# --- the packaged chart, checked as the directory ------------------------------------------------


@pytest.fixture(scope="module", params=["directory", "package"])
def chart_source(request: pytest.FixtureRequest, built: Built) -> Path:
    return CHART_DIR if request.param == "directory" else built.dist / CHART


def _render(source: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    files = helm_python.Chart.load(source).render(values, name=RELEASE, namespace=NAMESPACE)
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_chart_lints_clean(chart_source: Path, name: str) -> None:
    report = helm_python.lint(chart_source, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_chart_renders_valid_restricted_objects(chart_source: Path, name: str) -> None:
    rendered = _render(chart_source, VALUE_SETS[name])
    for doc in rendered:
        if doc["kind"] not in CUSTOM_RESOURCES:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    (workload,) = [doc for doc in rendered if doc["kind"] in {"Deployment", "StatefulSet"}]
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert_restricted(pod, container)
    assert (
        container["image"].startswith(
            f"ghcr.io/elevenlabs-link-monitor/elevenlabs-link-monitor:{__version__}"
        )
        or "@sha256:" in container["image"]
    )
    (config,) = [
        doc["data"]["config.yaml"]
        for doc in rendered
        if doc["kind"] == "ConfigMap" and "config.yaml" in doc["data"]
    ]
    parse_config(config, source=name)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_packaged_chart_renders_as_the_directory(built: Built, name: str) -> None:
    """So every check tests/system/deploy/test_helm.py makes of the directory holds for it."""
    assert _render(built.dist / CHART, VALUE_SETS[name]) == _render(CHART_DIR, VALUE_SETS[name])


# --- the README's installs -----------------------------------------------------------------------


def test_the_readme_shows_the_one_line_installs_of_this_version() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    image = values["image"]["repository"]
    assert image == "ghcr.io/elevenlabs-link-monitor/elevenlabs-link-monitor"
    # The published artifacts, each in one line (a shell continuation joined)...
    joined = readme.replace("\\\n", " ")
    assert re.search(
        r"helm install \S+ oci://ghcr\.io/elevenlabs-link-monitor/charts/elevenlabs-link-monitor"
        rf"\s+--version {re.escape(__version__)}\b",
        joined,
    )
    assert re.search(rf"docker run .* {re.escape(image)}:{re.escape(__version__)}\n", joined)
    for line in (f"pipx install {PROJECT}", f"pip install {PROJECT}"):
        assert line in readme
    # ...next to building from a checkout.
    for line in ("pip install .", "docker build -t", "deploy/helm/elevenlabs-link-monitor -n"):
        assert line in readme
    # No other version is offered.
    offered = re.findall(rf"(?:--version |{re.escape(image)}:)(\S+)", joined)
    assert offered
    assert set(offered) == {__version__}
