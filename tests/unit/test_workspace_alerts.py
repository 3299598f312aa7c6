"""`workspace_failing` and `workspace_recovered`: one line per change of a workspace's verdict."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from structlog.testing import capture_logs

from monitor.alerts import WorkspaceAlerts
from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config
from monitor.fleet import WorkspaceHealth

HEALTHY = WorkspaceHealth(polled=200)
REVOKED = WorkspaceHealth(polled=200, failing=200, cause="unauthorized")
UNREACHABLE = WorkspaceHealth(polled=200, failing=190, cause="unreachable")


def alerts() -> WorkspaceAlerts:
    config = Config.model_validate(
        {
            "workspaces": [
                {"name": "prod", "labels": {"team": "payments"}, "agents": [{"id": "a"}]},
                {"name": "eu", "agents": [{"id": "b"}]},
            ]
        }
    )
    return WorkspaceAlerts(ConfigHolder(config))


def lines(
    watch: WorkspaceAlerts, verdicts: dict[str, WorkspaceHealth]
) -> list[MutableMapping[str, Any]]:
    with capture_logs() as logs:
        watch.update(verdicts)
    return logs


def test_a_revoked_key_is_one_line_until_it_changes() -> None:
    watch = alerts()
    assert lines(watch, {"prod": HEALTHY, "eu": HEALTHY}) == []
    [line] = lines(watch, {"prod": REVOKED, "eu": HEALTHY})
    assert line == {
        "event": "workspace_failing",
        "log_level": "error",
        "workspace": "prod",
        "labels": {"team": "payments"},
        "reason": "unauthorized",
        "agents_failing": 200,
        "agents_not_found": 0,
        "agents_polled": 200,
    }
    assert lines(watch, {"prod": REVOKED, "eu": HEALTHY}) == []  # still failing: no repeat
    [changed] = lines(watch, {"prod": UNREACHABLE, "eu": HEALTHY})
    assert (changed["event"], changed["reason"]) == ("workspace_failing", "unreachable")
    [back] = lines(watch, {"prod": HEALTHY, "eu": HEALTHY})
    assert (back["event"], back["log_level"], back["reason"]) == (
        "workspace_recovered",
        "info",
        "unreachable",
    )
    assert "labels" not in lines(watch, {"eu": REVOKED})[0]  # eu has no owner labels


def test_a_workspace_that_leaves_the_config_says_nothing() -> None:
    watch = alerts()
    lines(watch, {"prod": REVOKED})
    assert lines(watch, {}) == []
    # Back in the config and still failing: a new failing line, its memory was dropped.
    assert [line["event"] for line in lines(watch, {"prod": REVOKED})] == ["workspace_failing"]
