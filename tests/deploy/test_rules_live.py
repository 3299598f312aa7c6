"""rules.yml in a real Prometheus scraping the real daemon (`demo`): the rules load,
evaluate without errors and select the agents in the matching states."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._helpers import JOB, PROMETHEUS_DIR, REPO
from tests.tooling import require_tool

pytestmark = pytest.mark.integration

# alert -> the agent state it is about
STATE_ALERTS = {
    "ElevenLabsAgentLinkExpiringSoon": "warning",
    "ElevenLabsAgentLinkExpiryCritical": "critical",
    "ElevenLabsAgentLinkExpired": "expired",
    "ElevenLabsAgentLinkMissing": "missing",
    "ElevenLabsAgentNotFound": "not_found",
}
RULE_COUNT = sum(
    len(group["rules"])
    for group in yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text(encoding="utf-8"))[
        "groups"
    ]
)
QUIET_ALERTS = {
    "ElevenLabsAgentLinkPollingFailing",
    "ElevenLabsLinkMonitorAbsent",
    "ElevenLabsLinkMonitorConfigReloadFailed",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.load(response)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def prometheus_url(tmp_path: Path) -> Iterator[str]:
    prometheus = require_tool("prometheus")
    pytest.importorskip("monitor.cli")
    demo_port, prom_port = _free_port(), _free_port()
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(PROMETHEUS_DIR / "rules.yml")],
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    demo = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--port", str(demo_port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{prom_port}"
    finally:
        _stop(server)
        _stop(demo)


def _snapshot(base: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    query = urllib.parse.urlencode({"query": "elevenlabs_agent_link_state == 1"})
    states = {
        sample["metric"]["agent_id"]: sample["metric"]["state"]
        for sample in _get(f"{base}/api/v1/query?{query}")["data"]["result"]
    }
    rules = {
        rule["name"]: rule
        for group in _get(f"{base}/api/v1/rules")["data"]["groups"]
        for rule in group["rules"]
    }
    return states, rules


def _problems(states: dict[str, str], rules: dict[str, dict[str, Any]]) -> list[str]:
    problems = [
        f"{name}: health {rule['health']} {rule.get('lastError', '')}"
        for name, rule in rules.items()
        if rule["health"] != "ok"
    ]
    for alert, state in STATE_ALERTS.items():
        active = {a["labels"]["agent_id"] for a in rules[alert].get("alerts", [])}
        in_state = {agent for agent, current in states.items() if current == state}
        if not in_state:
            problems.append(f"the demo has no agent in state {state}")
        elif not in_state <= active:
            problems.append(f"{alert}: {sorted(in_state - active)} not selected")
        healthy = {agent for agent, current in states.items() if current == "ok"}
        if active & healthy:
            problems.append(f"{alert}: selects agents in state ok: {sorted(active & healthy)}")
    for alert in QUIET_ALERTS:
        if rules[alert].get("alerts"):
            problems.append(f"{alert}: unexpectedly active {rules[alert]['alerts']}")
    return problems


def test_rules_select_the_demo_agents(prometheus_url: str) -> None:
    deadline = time.monotonic() + 90
    problems = ["no answer from Prometheus yet"]
    while time.monotonic() < deadline:
        try:
            states, rules = _snapshot(prometheus_url)
        except OSError as exc:
            problems = [f"Prometheus not answering: {exc}"]
        else:
            if len(rules) == RULE_COUNT:
                problems = _problems(states, rules)
                if not problems:
                    return
        time.sleep(2)
    pytest.fail("; ".join(problems))
