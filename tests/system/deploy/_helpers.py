"""Paths and a subprocess wrapper shared by the deploy/ tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.system.grafana.support import load_module

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
HELM_DIR = DEPLOY / "helm"
MIXIN_DIR = DEPLOY / "mixin"
CHART_DIR = HELM_DIR / "elevenlabs-link-monitor"
SYSTEMD_DIR = DEPLOY / "systemd"
RELEASE_DIR = DEPLOY / "release"
JOB = "elevenlabs-link-monitor"


def rules_generator() -> ModuleType:
    """deploy/mixin/build.py, which renders the mixin and writes every rules file, as a module."""
    return load_module("mixin_build", MIXIN_DIR / "build.py")


def release_script(name: str) -> ModuleType:
    """deploy/release/NAME.py (dist: `make dist`; pins: the pinned requirements) as a module."""
    return load_module(f"release_{name}", RELEASE_DIR / f"{name}.py")


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool and capture its output; the caller asserts on the exit status."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def dockerfile_lines(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines: list[str] = []
    buffer = ""
    for line in text.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        lines.append((buffer + line).strip())
        buffer = ""
    return lines


def assert_restricted(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """The restricted Pod Security Standard, as both the Deployment and the StatefulSet keep it."""
    assert pod["automountServiceAccountToken"] is False
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == 65532
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 65532
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context.get("privileged", False) is False
