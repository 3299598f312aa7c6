"""Dockerfile: hadolint-clean, and its healthcheck works against a real HTTP server."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy._helpers import KUBERNETES_DIR, REPO, dockerfile_lines, output, run
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


def test_multi_stage_on_a_pinned_slim_python() -> None:
    froms = _args("FROM")
    assert len(froms) == 2
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm( AS \w+)?", image), image
    assert froms[0].endswith(" AS builder")
    run_lines = " ".join(_args("RUN"))
    assert "pip install --no-cache-dir ." in run_lines
    assert "compileall" in run_lines
    assert any(arg.startswith("--from=builder /opt/venv") for arg in _args("COPY"))


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
    for label in ("title", "description", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in labels
    # The same config path as the Kubernetes Deployment.
    deployment = (KUBERNETES_DIR / "deployment.yaml").read_text(encoding="utf-8")
    assert "value: /etc/elevenlabs-link-monitor/config.yaml" in deployment


def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"pyproject.toml", "README.md", "monitor", "monitor/", "*", "**"} & ignored == set()
    assert {".git", "tests", "config.yaml"} <= ignored
    copied = " ".join(_args("COPY"))
    for needed in ("pyproject.toml", "README.md", "monitor"):
        assert needed in copied


def _healthcheck_command() -> list[str]:
    (healthcheck,) = _args("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert isinstance(command, list)
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9877/healthz" in command[2]
    return [str(part) for part in command]


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command(
    health_server: ThreadingHTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    port = health_server.server_address[1]
    code = _healthcheck_command()[2].replace("127.0.0.1:9877", f"127.0.0.1:{port}")
    result = run([sys.executable, "-c", code])
    assert (result.returncode == 0) is healthy, output(result)


def test_healthcheck_fails_when_nothing_listens() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    code = _healthcheck_command()[2].replace("127.0.0.1:9877", f"127.0.0.1:{port}")
    result = run([sys.executable, "-c", code])
    assert result.returncode != 0, output(result)
