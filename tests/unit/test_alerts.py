"""The alert log: one line on entering a state, repeats while it lasts, one on recovery."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from structlog.testing import capture_logs

from monitor.alerts import AlertLog, log_poll_failed
from monitor.evaluate import Kind, Observation, State
from monitor.model import AgentKey, PollFailure, Reason
from monitor.store import AgentRecord
from tests.settings import holder

KEY = AgentKey("prod", "agent_1")
NOW = 1_800_000_000.0


def record(expires_at: float | None = NOW + 3 * 86400) -> AgentRecord:
    return AgentRecord(KEY, "support-bot", Observation(Kind.LINK, expires_at))


def lines(alerts: AlertLog, steps: list[tuple[State, float]]) -> list[MutableMapping[str, Any]]:
    with capture_logs() as captured:
        for state, now in steps:
            alerts.observe(record(), state, now)
    return captured


def test_entering_warning_logs_one_alert_with_the_contract_fields() -> None:
    [line] = lines(AlertLog(holder(repeat=3600)), [(State.OK, NOW), (State.WARNING, NOW + 1)])
    assert line == {
        "event": "link_alert",
        "log_level": "warning",
        "workspace": "prod",
        "agent_id": "agent_1",
        "agent_name": "support-bot",
        "state": "warning",
        "previous_state": "ok",
        "expires_at": "2027-01-18T08:00:00Z",
        "seconds_left": 3 * 86400 - 1,
        "threshold_seconds": 7 * 86400,
    }


def test_an_alert_says_the_threshold_it_crossed_the_agents_own() -> None:
    logged = lines(
        AlertLog(holder(warning=5 * 86400, critical=4 * 86400)),
        [(State.WARNING, NOW), (State.CRITICAL, NOW + 1), (State.EXPIRED, NOW + 2)],
    )
    assert [x.get("threshold_seconds") for x in logged] == [5 * 86400, 4 * 86400, None]


def test_bad_states_are_errors() -> None:
    logged = lines(
        AlertLog(holder(repeat=3600)),
        [
            (State.CRITICAL, NOW),
            (State.EXPIRED, NOW + 1),
            (State.MISSING, NOW + 2),
            (State.NOT_FOUND, NOW + 3),
        ],
    )
    assert [(x["state"], x["previous_state"], x["log_level"]) for x in logged] == [
        ("critical", "unknown", "error"),
        ("expired", "critical", "error"),
        ("missing", "expired", "error"),
        ("not_found", "missing", "error"),
    ]


def test_a_lasting_alert_repeats_only_every_repeat_interval() -> None:
    logged = lines(
        AlertLog(holder(repeat=3600)),
        [
            (State.WARNING, NOW),
            (State.WARNING, NOW + 3599),
            (State.WARNING, NOW + 3600),
            (State.WARNING, NOW + 7000),
            (State.WARNING, NOW + 7200),
        ],
    )
    assert [x.get("repeated", False) for x in logged] == [False, True, True]
    assert [x["seconds_left"] for x in logged][1:] == [3 * 86400 - 3600, 3 * 86400 - 7200]


def test_next_due_says_when_to_repeat() -> None:
    alerts = AlertLog(holder(repeat=600))
    lines(alerts, [(State.OK, NOW)])
    assert alerts.next_due(KEY) is None
    lines(alerts, [(State.CRITICAL, NOW + 5)])
    assert alerts.next_due(KEY) == NOW + 605


def test_recovery_is_logged_once_and_clears_the_alert() -> None:
    alerts = AlertLog(holder(repeat=3600))
    logged = lines(alerts, [(State.MISSING, NOW), (State.OK, NOW + 60), (State.OK, NOW + 7200)])
    assert [x["event"] for x in logged] == ["link_alert", "link_recovered"]
    assert logged[1]["previous_state"] == "missing"
    assert logged[1]["log_level"] == "info"
    assert alerts.next_due(KEY) is None


def test_first_ok_answer_is_not_a_recovery() -> None:
    assert lines(AlertLog(holder(repeat=3600)), [(State.UNKNOWN, NOW), (State.OK, NOW + 1)]) == []


def test_forgotten_agents_start_afresh() -> None:
    alerts = AlertLog(holder(repeat=3600))
    lines(alerts, [(State.WARNING, NOW)])
    alerts.forget([KEY])
    [line] = lines(alerts, [(State.WARNING, NOW + 1)])
    assert line["previous_state"] == "unknown"


def test_an_alert_line_carries_the_owner_labels_when_there_are_any() -> None:
    owned = AgentRecord(
        KEY,
        "support-bot",
        Observation(Kind.LINK, NOW + 3 * 86400),
        labels=(("env", "prod"), ("team", "payments")),
    )
    alerts = AlertLog(holder(repeat=3600))
    with capture_logs() as captured:
        alerts.observe(owned, State.WARNING, NOW)
        log_poll_failed(owned, PollFailure(Reason.TIMEOUT, "timed out"))
    assert [line["labels"] for line in captured] == [{"env": "prod", "team": "payments"}] * 2
    [plain] = lines(AlertLog(holder(repeat=3600)), [(State.WARNING, NOW)])
    assert "labels" not in plain
