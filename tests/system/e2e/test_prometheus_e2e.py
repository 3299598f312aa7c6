"""The exporter with its real consumers: promtool, and a real Prometheus server on loopback.

A real Prometheus (Debian's `prometheus`) scrapes the real daemon, which polls the stand-in
API with one agent in every state, and evaluates deploy/prometheus/rules.yml. Then:

- every PromQL expression of the Grafana dashboard and of the Grafana alert rules
  (deploy/grafana/promql.py) parses and returns data on that Prometheus;
- the alerts that should fire are firing, each for the right agent, and no other alert is
  active (/api/v1/alerts);
- an agent's own thresholds decide its expiry alert (e2e_warning: 20 days left, warning at
  30d), and the alerts carry the agents' teams (through a rename too);
- once the daemon dies, ElevenLabsLinkMonitorDown fires and the link alerts keep firing
  from the rules' 15-minute fallback, without resolving and re-firing.

The copy of rules.yml loaded here has every `for:` rewritten to `0s`: the `for:`
durations are proven by the promtool unit tests (deploy/prometheus/rules_test.yml, run by
tests/system/deploy/test_prometheus.py); this test proves the expressions select the right agents
against real scraped data, which a 15-minute `for:` would not let a test observe.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ConfigWriter, canary_token
from tests.daemon import Daemon, monitor_cmd, wait_until
from tests.standin import Answer, StandIn, link, status
from tests.tooling import require_tool

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "elevenlabs-link-monitor.json"
GRAFANA_ALERTS = (
    REPO / "deploy" / "grafana" / "provisioning" / "alerting" / "elevenlabs-link-monitor.yaml"
)
PROMQL = REPO / "deploy" / "grafana" / "promql.py"
JOB = "elevenlabs-link-monitor"
DAY = 86400.0
WAIT = 30.0  # the longest any single step may take

StartDaemon = Callable[..., Daemon]
StartPrometheus = Callable[[str, Path], str]

# agent id -> the state the daemon must report for it
AGENT_STATES = {
    "e2e_ok": "ok",
    "e2e_no_expiry": "ok",
    "e2e_warning": "warning",
    "e2e_critical": "critical",
    "e2e_expired": "expired",
    "e2e_missing": "missing",
    "e2e_not_found": "not_found",
    "e2e_unknown": "unknown",
}
# alert -> the one agent it must fire for (and for no other)
AGENT_ALERTS = {
    "ElevenLabsAgentLinkExpiringSoon": "e2e_warning",
    "ElevenLabsAgentLinkExpiryCritical": "e2e_critical",
    "ElevenLabsAgentLinkExpired": "e2e_expired",
    "ElevenLabsAgentLinkMissing": "e2e_missing",
    "ElevenLabsAgentNotFound": "e2e_not_found",
    # poll_success == 0 unless not_found: the agent the API always answers 503 for.
    "ElevenLabsAgentLinkPollingFailing": "e2e_unknown",
}
# Owner labels and thresholds of their own (issue 17): e2e_warning has 20 days left and warns
# at 30d (the defaults, 7d, would not); e2e_critical is renamed below, and keeps its team.
OWN_POLICY = {
    "e2e_warning": {
        "labels": {"team": "payments"},
        "thresholds": {"warning": "30d", "critical": "3d"},
    },
    "e2e_critical": {"labels": {"team": "support"}},
}
TEAMS = {agent: policy["labels"]["team"] for agent, policy in OWN_POLICY.items()}
# Alerts that derive from the last successful poll and so outlive the daemon (rules.yml's
# 15-minute fallback); ElevenLabsAgentLinkPollingFailing is about the live daemon only.
LINK_ALERTS = {
    name: agent
    for name, agent in AGENT_ALERTS.items()
    if name != "ElevenLabsAgentLinkPollingFailing"
}
# Per-agent alerts that must fire for no agent here: the stand-in archives none (issue 19).
SILENT_AGENT_ALERTS = {"ElevenLabsAgentArchivedLinkLive"}
MONITOR_DOWN = "ElevenLabsLinkMonitorDown"
# Every alert of rules.yml is in AGENT_ALERTS, SILENT_AGENT_ALERTS or here: checked below.
MONITOR_ALERTS = {
    MONITOR_DOWN,
    "ElevenLabsLinkMonitorAbsent",
    "ElevenLabsLinkMonitorConfigReloadFailed",
    "ElevenLabsLinkMonitorCyclesIncomplete",
    "ElevenLabsLinkMonitorCyclesStale",
    "ElevenLabsLinkMonitorDiscoveryFailing",
    # A workspace failing as a whole (issue 18): the stand-in's workspace is healthy.
    "ElevenLabsWorkspaceKeyRejected",
    "ElevenLabsWorkspaceAgentsNotFound",
    "ElevenLabsWorkspaceApiUnreachable",
    "ElevenLabsWorkspacePollingFailing",
}

# Non-empty only when the counter increased: the setup makes each of them move.
MOVING_COUNTERS = [
    "sum(increase(elevenlabs_agent_link_token_rotations_total[5m])) > 0",  # e2e_ok rotates
    'sum(increase(elevenlabs_agent_link_poll_errors_total{reason="server_error"}[5m])) > 0',
    'sum(increase(elevenlabs_agent_link_poll_errors_total{reason="not_found"}[5m])) > 0',
    "sum(increase(elevenlabs_link_monitor_poll_duration_seconds_count[5m])) > 0",
]

# An active alert as compared here: (alertname, agent_id or "", state).
AlertKey = tuple[str, str, str]


# --- the stand-in's agents -------------------------------------------------------------


def rotating_link(expires: float) -> Answer:
    """A valid link whose token changes on every poll: token_rotations_total moves."""
    serial = itertools.count()

    def answer(handler: Any) -> None:
        link(canary_token(f"ok{next(serial)}"), expires)(handler)

    return answer


def script_every_state(standin: StandIn) -> list[str]:
    now = time.time()
    standin.set("e2e_ok", rotating_link(now + 30 * DAY))
    standin.set("e2e_no_expiry", link(canary_token("noexp"), None))
    standin.set("e2e_warning", link(canary_token("warn"), now + 20 * DAY))
    standin.set("e2e_critical", link(canary_token("crit"), now + 3600))
    standin.set("e2e_expired", link(canary_token("exp"), now - 3600))
    standin.set("e2e_missing", link(None))
    standin.set("e2e_unknown", status(503, {"detail": {"status": "unavailable"}}))
    # e2e_not_found has no answer: the stand-in says 404 agent_not_found.
    return list(AGENT_STATES)


def with_own_policy(config: Path) -> Path:
    """The config with OWN_POLICY's labels and thresholds on its agents."""
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    for agent in document["agents"]:
        agent.update(OWN_POLICY.get(agent["id"], {}))
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    return config


def ready(daemon: Daemon) -> None:
    wait_until(lambda: daemon.get("/readyz")[0] == 200, WAIT, "the first poll of every agent")


# --- Prometheus ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def fast_rules(directory: Path) -> Path:
    """A copy of rules.yml with every `for:` set to 0s (see the module docstring)."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rewritten = 0
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
                rewritten += 1
    alerts = {r["alert"] for g in document["groups"] for r in g["rules"] if "alert" in r}
    # The expectations below cover every alert of rules.yml, and every alert had a `for:`.
    assert alerts == set(AGENT_ALERTS) | SILENT_AGENT_ALERTS | MONITOR_ALERTS
    assert rewritten == len(alerts)
    target = directory / "rules-for-0s.yml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """Start Prometheus on loopback scraping `target` every second; stopped afterwards."""
    prometheus = require_tool("prometheus")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str, rules: Path) -> str:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        base = f"http://127.0.0.1:{free_port()}"
        log = tmp_path / "prometheus.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={base.removeprefix('http://')}",
                    "--log.level=warn",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited ({process.returncode}):\n{log.read_text(errors='replace')}"
                )
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=2) as response:  # noqa: S310
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(up, WAIT, "Prometheus to be ready")
        return base

    yield start
    for process in processes:
        stop(process)


def api(base: str, path: str, **params: str) -> Any:
    """GET a Prometheus API path; an error answer (400/422) is returned, not raised."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else base + path
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def settle(check: Callable[[], list[str]], what: str, timeout: float = WAIT) -> None:
    """Re-run `check` until it reports no problem; fail with its last problems after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        problems = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}:\n" + "\n".join(problems))
        time.sleep(0.2)


def load_promql() -> ModuleType:
    spec = importlib.util.spec_from_file_location("e2e_grafana_promql", PROMQL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grafana_expressions() -> list[str]:
    promql = load_promql()
    dashboard: list[str] = promql.dashboard_expressions(DASHBOARD)
    alerting: list[str] = promql.alert_rule_expressions(GRAFANA_ALERTS)
    assert dashboard, "no expression found in the dashboard"
    assert alerting, "no expression found in the Grafana alert rules"
    return list(dict.fromkeys(dashboard + alerting))


def expression_problems(base: str, expressions: list[str]) -> list[str]:
    """The expressions that do not (yet) return a finite value; a parse error fails at once."""
    problems = []
    for expr in expressions:
        answer = api(base, "/api/v1/query", query=expr)
        if answer.get("status") != "success":
            pytest.fail(f"Prometheus rejects {expr!r}: {answer.get('error', answer)}")
        result = answer["data"]["result"]
        if answer["data"]["resultType"] == "scalar":
            values = [float(result[1])]
        else:
            values = [float(sample["value"][1]) for sample in result]
        if not any(math.isfinite(v) for v in values):
            problems.append(f"no data ({values or 'empty result'}) for {expr!r}")
    return problems


def active_alerts(base: str) -> list[dict[str, Any]]:
    answer = api(base, "/api/v1/alerts")
    assert answer["status"] == "success", answer
    alerts: list[dict[str, Any]] = answer["data"]["alerts"]
    return alerts


def alert_keys(alerts: list[dict[str, Any]]) -> set[AlertKey]:
    return {(a["labels"]["alertname"], a["labels"].get("agent_id", ""), a["state"]) for a in alerts}


def diff(actual: set[AlertKey], expected: set[AlertKey]) -> list[str]:
    return [f"missing: {key}" for key in sorted(expected - actual)] + [
        f"unexpected: {key}" for key in sorted(actual - expected)
    ]


def rule_group_evaluations(base: str) -> tuple[list[str], str]:
    """Problems with the loaded rules, and the group's last evaluation time."""
    answer = api(base, "/api/v1/rules")
    assert answer["status"] == "success", answer
    groups = answer["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    problems = [
        f"{rule['name']}: health {rule['health']} {rule.get('lastError', '')}"
        for rule in rules
        if rule["health"] != "ok"
    ]
    expected = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text("utf-8"))["groups"])
    if len(rules) != expected:
        problems.append(f"{len(rules)} rules loaded, rules.yml has {expected}")
    return problems, ",".join(group["lastEvaluation"] for group in groups)


def next_evaluation(base: str) -> None:
    """Wait until Prometheus has evaluated the rule group once more."""
    before = rule_group_evaluations(base)[1]
    wait_until(lambda: rule_group_evaluations(base)[1] != before, WAIT, "a rule evaluation")


# --- the tests -------------------------------------------------------------------------


def test_promtool_check_metrics_flags_a_bad_exposition() -> None:
    """The control for the next test: promtool's linter does report problems."""
    promtool = require_tool("promtool")
    bad = "# HELP e2e_requests Requests.\n# TYPE e2e_requests counter\ne2e_requests 1\n"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=bad,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert '"_total" suffix' in result.stdout + result.stderr


@pytest.mark.parametrize("expose_relative", [False, True], ids=["default", "expose_relative"])
def test_live_metrics_pass_promtool_check_metrics(
    expose_relative: bool,
    standin: StandIn,
    write_config: ConfigWriter,
    start_daemon: StartDaemon,
) -> None:
    promtool = require_tool("promtool")
    sections = {"metrics": {"expose_relative": True}} if expose_relative else {}
    daemon = start_daemon(write_config(script_every_state(standin), **sections))
    ready(daemon)
    text = daemon.metrics_text()
    # Every metric family of the contract is there to be linted.
    assert "elevenlabs_link_monitor_poll_duration_seconds_bucket" in text
    assert "elevenlabs_agent_link_poll_errors_total{" in text

    result = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    before = time.time()
    relative = {
        dict(labels)["agent_id"]: value
        for labels, value in daemon.samples("elevenlabs_agent_link_expires_in_seconds").items()
    }
    after = time.time()
    if not expose_relative:
        assert relative == {}
        return
    # One series per agent with a known expiry, agreeing with the timestamp gauge.
    expiry = {
        dict(labels)["agent_id"]: value
        for labels, value in daemon.samples(
            "elevenlabs_agent_link_expiry_timestamp_seconds"
        ).items()
    }
    assert set(relative) == {"e2e_ok", "e2e_warning", "e2e_critical", "e2e_expired"}
    assert set(relative) == set(expiry)
    for agent, seconds in relative.items():
        # The time left when the scrape was served, between the instants around it (1 s more
        # either way for the rounding), instead of within 30 s of the clock now.
        assert expiry[agent] - after - 1 <= seconds <= expiry[agent] - before + 1, agent
    assert relative["e2e_expired"] < 0 < relative["e2e_critical"]


def test_prometheus_runs_the_dashboards_and_alerts_against_the_daemon(
    standin: StandIn,
    write_config: ConfigWriter,
    start_daemon: StartDaemon,
    start_prometheus: StartPrometheus,
    tmp_path: Path,
) -> None:
    # Discovery on (an empty listing), so that the discovery alert's expression has data.
    config = with_own_policy(
        write_config(
            script_every_state(standin), discover=True, poll={"interval": "1s", "jitter": 0}
        )
    )
    daemon = start_daemon(config)
    ready(daemon)
    # The premise of every check below: the daemon sees each agent in its state. With a 1 s
    # interval a loaded machine can cut a first poll at its deadline (a verdict, `unknown`):
    # the next cycle asks again.
    wait_until(
        lambda: {agent: daemon.state_of(agent) for agent in AGENT_STATES} == AGENT_STATES,
        what="every agent in its state",
    )
    target = daemon.url.removeprefix("http://")
    prometheus = start_prometheus(target, fast_rules(tmp_path))

    # Prometheus has scraped the daemon under the job name the rules and dashboard select.
    def scraped() -> list[str]:
        answer = api(prometheus, "/api/v1/query", query=f'up{{job="{JOB}"}} == 1')
        return [] if answer["data"]["result"] else ["no successful scrape yet"]

    settle(scraped, "Prometheus to scrape the daemon")

    # Every dashboard and Grafana alert expression parses and returns data. The failing
    # agents make the error counters move and the 1s polls the duration histogram, so the
    # rate() panels have data too; none is excluded.
    expressions = grafana_expressions()
    settle(lambda: expression_problems(prometheus, expressions), "every expression to return data")
    # Those counters really move in Prometheus (not only a rate of 0 over a flat series).
    settle(lambda: expression_problems(prometheus, MOVING_COUNTERS), "the counters to move", WAIT)

    # The rules loaded and evaluate without error...
    settle(lambda: rule_group_evaluations(prometheus)[0], "every rule to evaluate cleanly")

    # ...and exactly the expected alerts fire, each for its agent: none for e2e_ok and
    # e2e_no_expiry, none about the monitor itself (down, absent, config reload).
    expected = {(name, agent, "firing") for name, agent in AGENT_ALERTS.items()}
    settle(lambda: diff(alert_keys(active_alerts(prometheus)), expected), "the expected alerts")
    # Still exactly those after two more evaluations (no late or flapping alert).
    for _ in range(2):
        next_evaluation(prometheus)
    alerts = active_alerts(prometheus)
    assert diff(alert_keys(alerts), expected) == []
    for alert in alerts:
        assert alert["labels"]["job"] == JOB
        # The name is no part of an alert's identity; the annotations name the agent.
        assert "agent_name" not in alert["labels"]
        agent_id = alert["labels"]["agent_id"]
        assert f"agent {agent_id}-name ({agent_id})" in alert["annotations"]["summary"]
        # The agent's team, where it has one, for Alertmanager to route on.
        assert alert["labels"].get("team") == TEAMS.get(agent_id), alert["labels"]
        # The empty listing says nothing of the agents' use: unknown use keeps the severity
        # (issue 19), never info.
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["labels"]
    (soon,) = [a for a in alerts if a["labels"]["alertname"] == "ElevenLabsAgentLinkExpiringSoon"]
    assert "expires within 30d, in 19d " in soon["annotations"]["description"]
    active_since = {a["labels"]["alertname"]: a["activeAt"] for a in alerts}

    # Prometheus asked for OpenMetrics and got it: its metadata names a counter family
    # without `_total`, as only the OpenMetrics format does (the text format keeps it).
    metadata = api(prometheus, "/api/v1/targets/metadata", match_target=f'{{job="{JOB}"}}')
    kinds = {m["metric"]: m["type"] for m in metadata["data"]}
    assert kinds.get("elevenlabs_agent_link_poll_errors") == "counter", kinds
    assert "elevenlabs_agent_link_poll_errors_total" not in kinds
    assert kinds.get("elevenlabs_agent_info") == "gauge", kinds

    # A rename (here through the config; discovery takes names from the API) changes the
    # info series only: the alert stays the one that was firing, named by its new name.
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    for agent in document["agents"]:
        if agent["id"] == "e2e_critical":
            agent["name"] = "renamed-bot"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config_reloaded")
    critical = "ElevenLabsAgentLinkExpiryCritical"

    def renamed() -> list[str]:
        found = [a for a in active_alerts(prometheus) if a["labels"]["alertname"] == critical]
        summaries = [a["annotations"]["summary"] for a in found]
        if len(found) != 1 or "agent renamed-bot (e2e_critical)" not in summaries[0]:
            return [f"{critical}: {summaries}"]
        if found[0]["labels"].get("team") != "support":
            return [f"{critical}: {found[0]['labels']}"]
        return []

    settle(renamed, "the alert to name the agent by its new name")
    alerts = active_alerts(prometheus)
    assert diff(alert_keys(alerts), expected) == []
    assert {a["labels"]["alertname"]: a["activeAt"] for a in alerts} == active_since

    # The daemon dies: Prometheus' scrapes fail and ElevenLabsLinkMonitorDown fires for its
    # address (not ...Absent: the target is still configured). The link alerts keep firing
    # from the last known values; ...PollingFailing resolves with the daemon's series.
    daemon.proc.kill()
    daemon.proc.wait(10)
    after = {(name, agent, "firing") for name, agent in LINK_ALERTS.items()}
    after.add((MONITOR_DOWN, "", "firing"))
    settle(lambda: diff(alert_keys(active_alerts(prometheus)), after), "the monitor-down alert")
    alerts = active_alerts(prometheus)
    down = [a for a in alerts if a["labels"]["alertname"] == MONITOR_DOWN]
    assert [(a["labels"]["instance"], a["labels"]["job"]) for a in down] == [(target, JOB)]
    # Neither resolved nor re-fired across the restart-like gap: the same activeAt.
    assert {
        a["labels"]["alertname"]: a["activeAt"]
        for a in alerts
        if a["labels"]["alertname"] in LINK_ALERTS
    } == {name: active_since[name] for name in LINK_ALERTS}


def test_demo_has_an_agent_in_every_alerting_state(tmp_path: Path) -> None:
    """`demo` offers an agent for every state the link alerts are about.

    (Formerly checked through Prometheus by tests/system/deploy/test_rules_live.py; that the
    rules select the agents in these states is proven by the test above.)
    """
    port = free_port()
    log_file = tmp_path / "demo.log"
    with log_file.open("wb") as log:
        demo = subprocess.Popen(
            monitor_cmd("demo", "--port", str(port)), cwd=REPO, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str]:
        if demo.poll() is not None:
            raise AssertionError(
                f"demo exited ({demo.returncode}):\n{log_file.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url + path, timeout=2) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    try:
        wait_until(lambda: get("/readyz")[0] == 200, WAIT, "the demo's first poll")
        code, text = get("/metrics")
        assert code == 200
        states = {
            sample.labels["state"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "elevenlabs_agent_link_state" and sample.value == 1
        }
        assert {"ok", "warning", "critical", "expired", "missing", "not_found"} <= states
    finally:
        stop(demo)
