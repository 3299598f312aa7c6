"""Dockerfile: hadolint-clean, and its healthcheck works against a real HTTP server."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.system.deploy._helpers import CHART_DIR, REPO, dockerfile_lines, output, run
from tests.tooling import require_tool

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs."""
    pairs = []
    for line in dockerfile_lines(DOCKERFILE.read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _args(keyword: str) -> list[str]:
    return [rest for key, rest in _instructions() if key == keyword]


def test_hadolint_clean() -> None:
    hadolint = require_tool("hadolint")
    result = run([hadolint, "--no-color", "--format", "json", str(DOCKERFILE)])
    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout) == [], output(result)


def _stages() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The builder's instructions and the runtime's."""
    instructions = _instructions()
    runtime_from = [key for key, _ in instructions].index("FROM", 1)
    return instructions[:runtime_from], instructions[runtime_from:]


def test_multi_stage_on_a_pinned_slim_python() -> None:
    froms = _args("FROM")
    assert len(froms) == 2
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm( AS \w+)?", image), image
    assert froms[0].endswith(" AS builder")


def test_the_image_is_built_from_the_wheel() -> None:
    """The builder makes the wheel and a venv of it and the pins; the runtime copies that venv."""
    builder, runtime = _stages()
    run_lines = " ".join(" ".join(rest for key, rest in builder if key == "RUN").split())
    # The standard front end makes the wheel; with the commit's time it is `make dist`'s.
    assert "-m build --wheel --outdir /opt/dist ." in run_lines
    assert any(key == "ARG" and rest.startswith("SOURCE_DATE_EPOCH") for key, rest in builder)
    # Only the wheel and the pinned runtime dependencies go into the venv, checked.
    assert "-r deploy/release/requirements.txt /opt/dist/*.whl" in run_lines
    assert "--no-deps" in run_lines
    assert "--python /opt/venv/bin/python check" in run_lines
    assert "compileall" in run_lines
    # The runtime stage installs nothing by itself: it takes the builder's venv whole.
    runtime_runs = " ".join(rest for key, rest in runtime if key == "RUN")
    assert "pip" not in runtime_runs
    copies = [rest for key, rest in runtime if key == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_runtime_settings() -> None:
    instructions = _instructions()
    runtime = instructions[[key for key, _ in instructions].index("FROM", 1) :]
    users = [rest for key, rest in runtime if key == "USER"]
    assert users == ["65532:65532"]
    env = " ".join(rest for key, rest in runtime if key == "ENV")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "MONITOR_CONFIG=/etc/elevenlabs-link-monitor/config.yaml",
    ):
        assert setting in env
    assert json.loads(_args("ENTRYPOINT")[0]) == ["elevenlabs-link-monitor"]
    assert json.loads(_args("CMD")[0]) == ["run"]
    assert _args("EXPOSE") == ["9877"]
    labels = " ".join(_args("LABEL"))
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels
    assert (
        'org.opencontainers.image.source="https://github.com/elevenlabs-link-monitor/'
        'elevenlabs-link-monitor"'
    ) in labels
    # The same config directory as the Helm chart's pods.
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert '{{- define "elm.configDir" -}}/etc/elevenlabs-link-monitor{{- end -}}' in helpers


def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"pyproject.toml", "README.md", "monitor", "monitor/", "*", "**"} & ignored == set()
    assert {".git", "tests", "config.yaml", "deploy"} <= ignored
    # The one file of deploy/ the image needs: the pinned runtime dependencies.
    assert "!deploy/release/requirements.txt" in ignored
    copied = " ".join(_args("COPY"))
    for needed in ("pyproject.toml", "README.md", "monitor", "deploy/release/requirements.txt"):
        assert needed in copied


def test_healthcheck_runs_the_packaged_check() -> None:
    (healthcheck,) = _args("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command == ["python", "-m", "monitor.healthcheck"]


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Health))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    result = run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=elevenlabs-link-monitor.monitoring.svc",
            "-keyout", str(key), "-out", str(cert),
        ]
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    return cert, key


def _healthcheck(tmp_path: Path, port: int, tls: dict[str, str] | None = None) -> int:
    """Run the image's HEALTHCHECK command with a config naming the port (and TLS)."""
    server: dict[str, object] = {"host": "0.0.0.0", "port": port}
    if tls:
        server["tls"] = tls
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"agents": [{"id": "a"}], "server": server}), encoding="utf-8")
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, "-m", "monitor.healthcheck"],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.stdout == "", output(result)
    return result.returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_follows_the_configured_port(
    health_server: ThreadingHTTPServer, tmp_path: Path, status: int, healthy: bool
) -> None:
    _Health.status = status
    code = _healthcheck(tmp_path, health_server.server_address[1])
    assert (code == 0) is healthy


def test_healthcheck_fails_when_nothing_listens(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    assert _healthcheck(tmp_path, port) == 1


def test_healthcheck_speaks_https_when_tls_is_on(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    _Health.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    for running in _serve(server):
        port = running.server_address[1]
        assert _healthcheck(tmp_path, port, tls) == 0
        # Plain HTTP against the TLS port (the old command) does not pass.
        assert _healthcheck(tmp_path, port) == 1
