"""The forge's workflows (issue 20): both valid against GitHub's schema, every action pinned by
commit, each job with only the permissions it uses, and a release that publishes nothing
before `make test` passed on a tag that agrees with the version, the chart and the changelog
(deploy/release/check_version.py, which the workflow runs first)."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from monitor import __version__
from tests.system.deploy._helpers import CHART_DIR, REPO, output, run
from tests.system.grafana.support import load_module
from tests.tooling import require_tool

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
RELEASE = WORKFLOWS / "release.yml"
RELEASE_SCRIPTS = REPO / "deploy" / "release"
CHECK_VERSION = RELEASE_SCRIPTS / "check_version.py"
CHANGELOG_SECTION = RELEASE_SCRIPTS / "changelog_section.py"
IMAGE = "ghcr.io/elevenlabs-link-monitor/elevenlabs-link-monitor"
CHARTS = "oci://ghcr.io/elevenlabs-link-monitor/charts"

# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`, the comment being the release the commit is.
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*?))?\s*$")
PINNED = re.compile(r"(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})")
RELEASE_COMMENT = re.compile(r"v\d+\.\d+\.\d+")

# What publishes or signs something, by action or by command.
PUBLISHING_ACTIONS = {
    "docker/build-push-action",
    "pypa/gh-action-pypi-publish",
    "actions/attest-build-provenance",
}
PUBLISHING_COMMANDS = ("helm push", "gh release create", "cosign sign", "cosign attest")

# Each release job's permissions, exactly: widening one is a decision a test should see.
RELEASE_PERMISSIONS = {
    "build": {"contents": "read"},
    "image": {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
        "artifact-metadata": "write",
    },
    "chart": {"packages": "write", "id-token": "write"},
    "pypi": {"id-token": "write"},
    "provenance": {"id-token": "write", "attestations": "write"},
    "release": {"contents": "write"},
}


def _load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    return workflow


def _triggers(workflow: dict[Any, Any]) -> Any:
    """`on:`, which YAML 1.1 (PyYAML) reads as the boolean True."""
    return workflow.get("on", workflow.get(True))


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps = job.get("steps", [])
    assert isinstance(steps, list)
    return steps


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in _steps(job) if "run" in step]


def _action(step: dict[str, Any]) -> str | None:
    uses = step.get("uses")
    return None if uses is None else str(uses).split("@", 1)[0]


def _step(job: dict[str, Any], action: str) -> dict[str, Any]:
    found = [step for step in _steps(job) if _action(step) == action]
    assert len(found) == 1, f"expected one {action} step, found {len(found)}"
    return found[0]


def _publishes(job: dict[str, Any]) -> bool:
    actions = {_action(step) for step in _steps(job)}
    commands = "\n".join(_runs(job))
    return bool(actions & PUBLISHING_ACTIONS) or any(c in commands for c in PUBLISHING_COMMANDS)


def _needs(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job that `name` waits for, directly or not."""
    direct = jobs[name].get("needs", [])
    pending = [direct] if isinstance(direct, str) else list(direct)
    seen: set[str] = set()
    while pending:
        job = pending.pop()
        if job not in seen:
            seen.add(job)
            more = jobs[job].get("needs", [])
            pending.extend([more] if isinstance(more, str) else more)
    return seen


def _uses_lines() -> Iterator[tuple[Path, int, str, str | None]]:
    for path in (CI, RELEASE):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if match := USES_LINE.match(line):
                yield path, number, match["ref"], match["comment"]


@pytest.fixture(scope="module")
def check_version() -> ModuleType:
    # check_version imports its sibling as the workflow runs it (python3 deploy/release/...).
    load_module("changelog_section", CHANGELOG_SECTION)
    return load_module("check_version", CHECK_VERSION)


@pytest.fixture(scope="module")
def changelog_section() -> ModuleType:
    return load_module("changelog_section", CHANGELOG_SECTION)


# ---- valid, pinned ----


@pytest.mark.parametrize("path", [CI, RELEASE], ids=lambda p: p.name)
def test_the_workflow_passes_the_github_workflows_schema(path: Path) -> None:
    tool = require_tool("check-jsonschema")
    result = run([tool, "--builtin-schema", "vendor.github-workflows", str(path)])
    assert result.returncode == 0, output(result)


def test_the_schema_check_refuses_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a permission GitHub does not have is refused."""
    tool = require_tool("check-jsonschema")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        RELEASE.read_text(encoding="utf-8").replace("contents: write", "contents: sudo"),
        encoding="utf-8",
    )
    result = run([tool, "--builtin-schema", "vendor.github-workflows", str(broken)])
    assert result.returncode != 0, output(result)


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_release() -> None:
    lines = list(_uses_lines())
    parsed = sum(
        1
        for path in (CI, RELEASE)
        for job in _load(path)["jobs"].values()
        for step in _steps(job)
        if "uses" in step
    )
    assert len(lines) == parsed > 0, "every uses: is on a line of its own"
    for path, number, ref, comment in lines:
        where = f"{path.name}:{number}"
        assert PINNED.fullmatch(ref), f"{where}: {ref} is not pinned by a 40-hex commit"
        assert comment is not None, f"{where}: say which release {ref} is (# vX.Y.Z)"
        assert RELEASE_COMMENT.fullmatch(comment), f"{where}: '# {comment}' is not a release"


def test_one_action_one_pin_across_the_workflows() -> None:
    pins: dict[str, set[tuple[str, str | None]]] = {}
    for _, _, ref, comment in _uses_lines():
        match = PINNED.fullmatch(ref)
        assert match is not None
        pins.setdefault(match["action"].lower(), set()).add((match["sha"], comment))
    assert {action: pin for action, pin in pins.items() if len(pin) > 1} == {}


def test_checkouts_keep_no_credentials() -> None:
    for path in (CI, RELEASE):
        for name, job in _load(path)["jobs"].items():
            for step in _steps(job):
                if _action(step) == "actions/checkout":
                    assert step.get("with", {}).get("persist-credentials") is False, name


# ---- CI ----


def test_ci_runs_the_readme_test_command_on_every_push_and_pull_request() -> None:
    workflow = _load(CI)
    assert set(_triggers(workflow)) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["env"]["CI"] == "true", "a missing tool fails its test under CI=true"
    assert _runs(job) == ["make test"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make test\s+#.*what CI runs", readme, re.M)
    assert (REPO / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("make test")


# ---- the release ----


def test_the_release_runs_on_version_tags_only() -> None:
    assert _triggers(_load(RELEASE)) == {"push": {"tags": ["v*"]}}


def test_the_release_checks_the_tag_then_tests_then_builds() -> None:
    build = _load(RELEASE)["jobs"]["build"]
    assert build["env"]["CI"] == "true"
    runs = _runs(build)
    check = 'python3 deploy/release/check_version.py "$GITHUB_REF_NAME"'
    assert runs.index(check) < runs.index("make test") < runs.index("make dist"), runs
    assert "sha256sum -c SHA256SUMS" in runs


def test_nothing_is_published_before_make_test_passed() -> None:
    jobs = _load(RELEASE)["jobs"]
    tested = {name for name, job in jobs.items() if "make test" in _runs(job)}
    assert tested == {"build"}
    assert not _publishes(jobs["build"]), "the job that runs the tests publishes nothing"
    publishers = {name for name, job in jobs.items() if _publishes(job)}
    assert publishers == {"image", "chart", "pypi", "provenance", "release"}
    for name in publishers:
        assert tested <= _needs(jobs, name), f"{name} does not wait for make test"
    assert _needs(jobs, "release") == {"build", "image", "chart", "pypi", "provenance"}


def test_each_release_job_has_only_the_permissions_it_uses() -> None:
    workflow = _load(RELEASE)
    assert workflow["permissions"] == {}, "nothing by default; each job says what it needs"
    assert {name: job.get("permissions") for name, job in workflow["jobs"].items()} == (
        RELEASE_PERMISSIONS
    )


def test_the_image_is_multi_arch_signed_with_its_sbom_and_provenance() -> None:
    workflow = _load(RELEASE)
    assert workflow["env"]["IMAGE"] == IMAGE
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert values["image"]["repository"] == IMAGE, "the chart runs the image the release pushes"
    image = workflow["jobs"]["image"]
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action"):
        _step(image, action)
    build = _step(image, "docker/build-push-action")
    assert build["id"] == "build"
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert build["with"]["tags"] == "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"
    assert "VERSION=${{ steps.version.outputs.version }}" in build["with"]["build-args"]
    assert build["with"]["provenance"] == "mode=max"
    commands = "\n".join(_runs(image))
    assert 'echo "version=${GITHUB_REF_NAME#v}"' in commands
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in commands
    assert "sboms=(dist/*.cdx.json)" in commands
    assert 'cosign attest --yes --type cyclonedx --predicate "${sboms[0]}"' in commands
    signing = [step for step in _steps(image) if "cosign" in step.get("run", "")]
    assert all(step["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}" for step in signing), (
        "sign and attest the digest pushed, never a tag"
    )
    provenance = _step(image, "actions/attest-build-provenance")["with"]
    assert provenance == {
        "subject-name": "${{ env.IMAGE }}",
        "subject-digest": "${{ steps.build.outputs.digest }}",
        "push-to-registry": True,
    }


def test_the_chart_is_pushed_to_the_oci_registry_and_signed() -> None:
    workflow = _load(RELEASE)
    assert workflow["env"]["CHARTS"] == CHARTS
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["name"] == "elevenlabs-link-monitor", "helm package names the file after it"
    commands = "\n".join(_runs(workflow["jobs"]["chart"]))
    assert "helm registry login ghcr.io" in commands
    assert 'helm push "dist/elevenlabs-link-monitor-${version}.tgz" "$CHARTS"' in commands
    assert 'cosign sign --yes "${CHARTS#oci://}/elevenlabs-link-monitor@${digest}"' in commands


def test_pypi_gets_the_wheel_and_the_sdist_only_by_trusted_publishing() -> None:
    jobs = _load(RELEASE)["jobs"]
    uploads = [
        step["with"] for step in _steps(jobs["build"]) if _action(step) == "actions/upload-artifact"
    ]
    python_dist = next(upload for upload in uploads if upload["name"] == "python-dist")
    assert python_dist["path"].split() == ["dist/*.whl", "dist/*.tar.gz"]
    pypi = jobs["pypi"]
    assert pypi["environment"]["name"] == "pypi"
    assert _step(pypi, "actions/download-artifact")["with"]["name"] == "python-dist"
    publish = _step(pypi, "pypa/gh-action-pypi-publish")
    assert set(publish.get("with", {})) <= {"packages-dir"}, "no password: trusted publishing"


def test_the_release_body_is_the_changelog_section_and_dist_is_attached() -> None:
    release = _load(RELEASE)["jobs"]["release"]
    commands = "\n".join(_runs(release))
    assert (
        'python3 deploy/release/changelog_section.py "$GITHUB_REF_NAME" > "$RUNNER_TEMP/notes.md"'
        in commands
    )
    assert 'gh release create "$GITHUB_REF_NAME" --verify-tag' in commands
    assert '--notes-file "$RUNNER_TEMP/notes.md" dist/*' in commands
    assert "sha256sum -c SHA256SUMS" in commands


# ---- the tag, the version, the chart and the changelog agree ----


def test_the_tag_of_this_version_agrees_with_every_piece(check_version: ModuleType) -> None:
    assert check_version.problems(f"v{__version__}") == []
    result = run([sys.executable, str(CHECK_VERSION), f"v{__version__}"])
    assert result.returncode == 0, output(result)


def test_a_mismatched_tag_is_refused_in_one_line() -> None:
    result = run([sys.executable, str(CHECK_VERSION), "v9.9.9"])
    assert (result.returncode, result.stdout) == (1, ""), output(result)
    assert result.stderr.splitlines() == [
        f"check_version: tag 'v9.9.9' is not 'v{__version__}', the project's version (monitor/__init__.py)"
    ]


@pytest.mark.parametrize(
    "tag",
    [__version__, f"v{__version__}-rc.1", f"release-{__version__}", f"V{__version__}", ""],
)
def test_a_tag_that_is_not_v_and_the_version_is_refused(
    check_version: ModuleType, tag: str
) -> None:
    assert check_version.problems(tag) == [
        f"tag {tag!r} is not 'v{__version__}', the project's version (monitor/__init__.py)"
    ]


def _release_tree(tmp_path: Path) -> Path:
    """A copy of the files a release's version lives in."""
    for relative in (
        "monitor/__init__.py",
        "deploy/helm/elevenlabs-link-monitor/Chart.yaml",
        "Dockerfile",
        "CHANGELOG.md",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, tmp_path / relative)
    return tmp_path


def _body_bounds(text: str, version: str) -> tuple[int, int]:
    """Where the version's section body starts and ends in CHANGELOG.md's text."""
    start = text.index("\n", text.index(f"## [{version}] - ")) + 1
    end = re.compile(r"^(?:## |\[[^\]]+\]:\s)", re.M).search(text, start)
    assert end is not None
    return start, end.start()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name} has no {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


CHART_YAML = "deploy/helm/elevenlabs-link-monitor/Chart.yaml"


@pytest.mark.parametrize(
    ("relative", "old", "new", "problem"),
    [
        (
            CHART_YAML,
            f'appVersion: "{__version__}"',
            'appVersion: "9.9.9"',
            f"Chart.yaml's appVersion is '9.9.9', not the project's '{__version__}'",
        ),
        (
            CHART_YAML,
            f"\nversion: {__version__}",
            "\nversion: 9.9.9",
            f"Chart.yaml's version is '9.9.9', not the project's '{__version__}'",
        ),
        (
            "Dockerfile",
            f"ARG VERSION={__version__}",
            "ARG VERSION=9.9.9",
            f"the Dockerfile's ARG VERSION is '9.9.9', not the project's '{__version__}'",
        ),
        (
            "CHANGELOG.md",
            f"## [{__version__}] - ",
            "## [9.9.9] - ",
            f"CHANGELOG.md has no '## [{__version__}] - YYYY-MM-DD' section: move [Unreleased] there",
        ),
        (
            "CHANGELOG.md",
            f"\n[{__version__}]: ",
            "\n[9.9.9]: ",
            f"CHANGELOG.md has no '[{__version__}]: ...v{__version__}' link at its end",
        ),
    ],
    ids=["chart-appVersion", "chart-version", "dockerfile", "changelog-section", "changelog-link"],
)
def test_a_piece_that_disagrees_is_named_in_one_line(
    check_version: ModuleType, tmp_path: Path, relative: str, old: str, new: str, problem: str
) -> None:
    root = _release_tree(tmp_path)
    _edit(root / relative, old, new)
    assert check_version.problems(f"v{__version__}", root) == [problem]


def test_an_empty_changelog_section_is_refused(check_version: ModuleType, tmp_path: Path) -> None:
    root = _release_tree(tmp_path)
    changelog = root / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    start, end = _body_bounds(text, __version__)
    changelog.write_text(text[:start] + "\n" + text[end:], encoding="utf-8")
    assert check_version.problems(f"v{__version__}", root) == [
        f"CHANGELOG.md's '## [{__version__}]' section is empty"
    ]


def test_bumping_the_version_alone_names_every_piece_left_behind(
    check_version: ModuleType, tmp_path: Path
) -> None:
    root = _release_tree(tmp_path)
    _edit(root / "monitor/__init__.py", f'__version__ = "{__version__}"', '__version__ = "9.9.9"')
    problems = check_version.problems("v9.9.9", root)
    assert [line.split(" ", 1)[0] for line in problems] == [
        "Chart.yaml's",
        "Chart.yaml's",
        "the",
        "CHANGELOG.md",
    ], problems


# ---- the release notes ----


def test_the_release_notes_are_this_versions_changelog_section(
    changelog_section: ModuleType,
) -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    notes = changelog_section.section(text, f"v{__version__}")
    start, end = _body_bounds(text, __version__)
    assert notes == text[start:end].strip("\n") + "\n"
    assert "## " not in notes.replace("### ", "")
    unreleased = changelog_section.section(text, "Unreleased")
    assert f"## [{__version__}]" not in unreleased
    result = run([sys.executable, str(CHANGELOG_SECTION), f"v{__version__}"])
    assert (result.returncode, result.stdout) == (0, notes), output(result)


def test_the_release_notes_stop_at_the_next_heading_and_at_the_links(
    changelog_section: ModuleType,
) -> None:
    text = (
        "# Changelog\n\n## [Unreleased]\n\n## [1.1.0] - 2027-01-02\n\n### Fixed\n- b\n\n"
        "## [1.0.0] - 2027-01-01\n\n### Added\n- a\n\n"
        "[Unreleased]: https://example.invalid/compare/v1.1.0...HEAD\n"
    )
    assert changelog_section.section(text, "1.1.0") == "### Fixed\n- b\n"
    assert changelog_section.section(text, "v1.0.0") == "### Added\n- a\n"
    with pytest.raises(changelog_section.SectionError, match="section is empty"):
        changelog_section.section(text, "Unreleased")
    with pytest.raises(changelog_section.SectionError, match=r"no '## \[1.2.0\]' section"):
        changelog_section.section(text, "1.2.0")


def test_release_notes_for_an_unknown_version_fail_in_one_line() -> None:
    result = run([sys.executable, str(CHANGELOG_SECTION), "v9.9.9"])
    assert (result.returncode, result.stdout) == (1, ""), output(result)
    assert result.stderr.splitlines() == [
        "changelog_section: CHANGELOG.md has no '## [9.9.9]' section"
    ]


# ---- docs/releasing.md ----


def test_the_documented_verification_matches_the_signing_workflow() -> None:
    """A keyless signature's certificate names the workflow file and the tag it ran for."""
    docs = (REPO / "docs" / "releasing.md").read_text(encoding="utf-8")
    identity = (
        "https://github.com/elevenlabs-link-monitor/elevenlabs-link-monitor/"
        f".github/workflows/{RELEASE.name}@refs/tags/v{__version__}"
    )
    patterns = re.findall(r"--certificate-identity-regexp '([^']+)'", docs)
    assert len(patterns) == 3, "the image, the chart and the SBOM attestation"
    for pattern in patterns:
        assert re.search(pattern, identity), pattern
        assert not re.search(pattern, identity.replace("refs/tags/v", "refs/heads/v"))
    issuers = re.findall(r"--certificate-oidc-issuer (\S+)", docs)
    assert issuers == ["https://token.actions.githubusercontent.com"] * 3
    assert f"cosign verify {IMAGE}:X.Y.Z" in docs
    assert f"cosign verify {CHARTS.removeprefix('oci://')}/elevenlabs-link-monitor:X.Y.Z" in docs
    assert "sha256sum -c SHA256SUMS" in docs
    for bumped in ("monitor/__init__.py", "Chart.yaml", "ARG VERSION=X.Y.Z", "## [X.Y.Z] - "):
        assert bumped in docs, f"the release steps name {bumped}"
