"""Release hygiene: one version everywhere, a licence, a changelog, metadata for PyPI."""

from __future__ import annotations

import re
import tomllib

import yaml

from monitor import __version__
from tests.system.deploy._helpers import CHART_DIR, REPO, dockerfile_lines


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "monitor/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_chart_image_and_changelog_follow_the_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__
    assert chart["version"] == __version__
    dockerfile = dockerfile_lines((REPO / "Dockerfile").read_text(encoding="utf-8"))
    assert f"ARG VERSION={__version__}" in dockerfile
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M)


def test_licence_and_package_metadata() -> None:
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Topic :: System :: Monitoring" in classifiers
    assert {"Homepage", "Source", "Issues", "Changelog"} <= project["urls"].keys()


def test_readme_deploy_section_leads_with_the_chart() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    deploy = readme[readme.index("\n## Deploy\n") :]
    first = re.search(r"^### (.+)$", deploy, re.M)
    assert first is not None
    assert "Helm chart" in first[1]
    assert "helm install" in deploy[: deploy.index("### Container")]
    assert "kubectl apply -k" not in readme, "the kustomize base is gone"
