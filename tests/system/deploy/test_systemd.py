"""deploy/systemd: the hardened unit and its config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.system.deploy._helpers import SYSTEMD_DIR, output, run

UNIT = SYSTEMD_DIR / "elevenlabs-link-monitor.service"
BINARY = "/opt/elevenlabs-link-monitor/bin/elevenlabs-link-monitor"


def _directives() -> dict[str, list[str]]:
    """Every `Key=value` in the unit, by key, in order (keys may repeat)."""
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";", "[")):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not a Key=value line: {line!r}"
        directives.setdefault(key, []).append(value)
    return directives


def _systemd_analyze() -> str:
    # Optional: systemd-analyze is not on every machine (e.g. minimal containers).
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed")
    return path


def test_hardening_directives() -> None:
    d = _directives()
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    for key, value in expected.items():
        assert d.get(key) == [value], key
    assert "@system-service" in d["SystemCallFilter"]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    (exec_start,) = d["ExecStart"]
    assert exec_start.split() == [BINARY, "run"]
    assert "MONITOR_CONFIG=/etc/elevenlabs-link-monitor/config.yaml" in d["Environment"]
    # A config error (exit 2) is not retried in a loop.
    assert d["RestartPreventExitStatus"] == ["2"]


def test_credential_path_matches_config() -> None:
    config_module = pytest.importorskip("monitor.config.loading")
    (credential,) = _directives()["LoadCredential"]
    name, _, source = credential.partition(":")
    assert source == "/etc/elevenlabs-link-monitor/api-key"
    expected = f"/run/credentials/{UNIT.name}/{name}"  # what %d/<name> expands to
    text = (SYSTEMD_DIR / "config.yaml").read_text(encoding="utf-8")
    config = config_module.parse_config(text, "deploy/systemd/config.yaml")
    (workspace,) = config.resolved_workspaces()
    assert str(workspace.api_key_file) == expected


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    # verify insists that ExecStart exists: point it at a stand-in, keep everything else.
    stand_in = tmp_path / "elevenlabs-link-monitor"
    stand_in.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stand_in.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(BINARY, str(stand_in)), encoding="utf-8"
    )
    result = run([analyze, "verify", "--man=no", str(unit)])
    assert result.returncode == 0, output(result)
    # Unknown keys and bad values are only warnings: any output is a finding.
    assert result.stdout.strip() == "", output(result)
    assert result.stderr.strip() == "", output(result)


def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    result = run([analyze, "security", "--offline=true", "--threshold=20", "--no-pager", str(unit)])
    # Exposure above 2.0 (of 10) fails; the unit scores about 1.0.
    assert result.returncode == 0, output(result)
    assert "Overall exposure level" in result.stdout, output(result)
