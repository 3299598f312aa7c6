"""Words for people: the only place they are written (the templates use them)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monitor.evaluate import State
from monitor.model import iso

if TYPE_CHECKING:
    from monitor.web.status.figures import Row
    from monitor.web.status.search import View

# The text beside every state's colour: colour alone is never the only signal.
LABELS: Mapping[State, str] = {
    State.EXPIRED: "Expired",
    State.MISSING: "Missing",
    State.NOT_FOUND: "Not found",
    State.CRITICAL: "Critical",
    State.WARNING: "Warning",
    State.UNKNOWN: "Unknown",
    State.OK: "OK",
}
DESCRIPTIONS: Mapping[State, str] = {
    State.EXPIRED: "the link's token has expired",
    State.MISSING: "the agent has no shareable link",
    State.NOT_FOUND: "the API does not know the agent",
    State.CRITICAL: "expires within the critical threshold",
    State.WARNING: "expires within the warning threshold",
    State.UNKNOWN: "no successful poll yet",
    State.OK: "far from expiry, or no expiry",
}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def span(seconds: float) -> str:
    """`3 d 4 h`, `2 h`, `4 m 10 s`, `12 s`: the two largest units, the second left out at 0.

    Total: any float gives words, never an error.
    """
    if math.isnan(seconds):
        return "an unknown time"
    if math.isinf(seconds):
        return "an unbounded time"
    left = int(abs(seconds))
    for index, (unit, size) in enumerate(_UNITS):
        if left >= size or unit == "s":
            text = f"{left // size} {unit}"
            if index + 1 < len(_UNITS):
                small_unit, small_size = _UNITS[index + 1]
                small = (left % size) // small_size
                if small:
                    text += f" {small} {small_unit}"
            return text
    raise AssertionError("unreachable")  # pragma: no cover


def ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{span(seconds)} ago"


def time_left(row: Row) -> str:
    left = row["seconds_left"]
    if left is None:
        return {
            "link": "never expires",
            "missing": "no shareable link",
            "not_found": "agent not found",
        }.get(row["answer"] or "", "not known yet")
    if left <= 0:
        return "expired just now" if left > -1 else f"expired {span(left)} ago"
    return f"in {span(left)}"


def when(timestamp: float) -> str:
    """`2025-06-01 14:03 UTC`; a time no calendar shows is written as its number."""
    text = iso(timestamp)
    return f"{text[:10]} {text[11:16]} UTC" if _calendar(text) else text


def time_of_day(timestamp: float) -> str:
    """`14:03:05 UTC`; a time no calendar shows is written as its number."""
    text = iso(timestamp)
    return f"{text[11:19]} UTC" if _calendar(text) else text


def _calendar(text: str) -> bool:
    return len(text) == 20 and text[10] == "T" and text.endswith("Z")


def last_call_text(row: Row) -> str:
    """`3 m ago`, `never`, `unknown`: the agent's last call, as the listing says."""
    if row["usage"] == "called" and row["last_call_age_seconds"] is not None:
        return ago(row["last_call_age_seconds"])
    return "never" if row["usage"] == "never" else "unknown"


def error_text(row: Row) -> str:
    if row["last_error"] is None:
        return ""
    detail = row["last_error_detail"]
    return f"{row['last_error']}: {detail}" if detail else str(row["last_error"])


def banners(status: Mapping[str, Any]) -> list[str]:
    """Plain sentences about what is wrong with the monitor itself."""
    found = []
    if status["stale"]:
        age = status["last_cycle_age_seconds"]
        since = (
            f"the last full poll cycle finished {ago(age)}"
            if age is not None
            else "no full poll cycle has finished yet"
        )
        found.append(
            f"The monitor's knowledge is stale: {since}, but one is expected every "
            f"{span(status['poll_interval_seconds'])}."
        )
    if not status["config_reload"]["ok"]:
        found.append(
            "The last config reload failed, or changed server: settings that wait for a "
            "restart: see its log (config_reload_failed or config_reload_partial)."
        )
    for workspace in status["workspaces"]:
        failing = workspace["usage_listings_failing"]
        if "live" in failing:
            found.append(
                f"The usage of workspace {workspace['name']}'s agents is unknown: its agent "
                f"listing fails ({failing['live']}). Its links are polled all the same."
            )
        if "archived" in failing:
            found.append(
                f"The archived agents of workspace {workspace['name']} cannot be listed "
                f"({failing['archived']}): an archived agent's live link may go unseen."
            )
        if workspace["reachability"] == "unreachable":
            reasons = ", ".join(f"{v} {k}" for k, v in workspace["last_errors"].items())
            found.append(
                f"The API of workspace {workspace['name']} cannot be reached: the last poll "
                f"of all {workspace['polled']} agents failed ({reasons})."
            )
    return found


def reachability_text(workspace: Mapping[str, Any]) -> str:
    if workspace["reachability"] == "pending":
        return "not polled yet"
    return f"{workspace['answered']}/{workspace['polled']} answering"


def shown_text(view: View) -> str:
    if view.matching <= len(view.rows):
        return f"Showing {view.matching:,} of {view.total:,} agents"
    last = view.first + len(view.rows) - 1
    if view.matching == view.total:
        return f"Showing {view.first:,} to {last:,} of {view.total:,} agents"
    return f"Showing {view.first:,} to {last:,} of {view.matching:,} matching, of {view.total:,} agents"
