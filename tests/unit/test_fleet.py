"""A workspace fails as a whole when (nearly) every polled agent's last poll failed, or
answered 404.

The rules drop an agent's poll-failure alert while its workspace fails as a whole, so this
verdict decides between one page and thousands; and it must never say "whole" for a few
agents' trouble, or it would hide them.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from monitor.evaluate import LINK_WITHOUT_EXPIRY
from monitor.fleet import (
    FAILURE_CAUSES,
    WHOLE_SHARE,
    WorkspaceHealth,
    cause_of,
    workspace_health,
)
from monitor.model import AgentKey, LinkAnswer, PollFailure, Reason
from monitor.store import AgentRecord


def answered(workspace: str, agent: str) -> AgentRecord:
    answer = LinkAnswer(LINK_WITHOUT_EXPIRY, None)
    return AgentRecord(AgentKey(workspace, agent)).after(answer, 1.0)


def failed(workspace: str, agent: str, reason: Reason) -> AgentRecord:
    return AgentRecord(AgentKey(workspace, agent)).after(PollFailure(reason, "x"), 1.0)


def unpolled(workspace: str, agent: str) -> AgentRecord:
    return AgentRecord(AgentKey(workspace, agent))


def test_a_revoked_key_fails_the_workspace_as_unauthorized() -> None:
    records = [failed("prod", f"a{i}", Reason.UNAUTHORIZED) for i in range(200)]
    records += [answered("staging", "b1")]
    health = workspace_health(records, ["prod", "staging"])
    assert health["prod"] == WorkspaceHealth(polled=200, failing=200, cause="unauthorized")
    assert health["staging"] == WorkspaceHealth(polled=1, failing=0, cause=None)


def test_timeouts_and_refused_connections_are_one_cause_unreachable() -> None:
    records = [failed("w", "a1", Reason.TIMEOUT), failed("w", "a2", Reason.CONNECTION)]
    records += [failed("w", "a3", Reason.CONNECTION)]
    assert workspace_health(records, ["w"])["w"].cause == "unreachable"


def test_a_few_polls_getting_through_in_an_outage_still_fail_the_whole() -> None:
    records = [failed("w", f"a{i}", Reason.TIMEOUT) for i in range(95)]
    records += [answered("w", f"b{i}") for i in range(5)]
    assert workspace_health(records, ["w"])["w"].cause == "unreachable"


def test_one_in_five_answering_is_not_a_whole_workspace_failing() -> None:
    # Below WHOLE_SHARE: the failing agents alert one by one, as before.
    records = [failed("w", f"a{i}", Reason.SERVER_ERROR) for i in range(8)]
    records += [answered("w", f"b{i}") for i in range(2)]
    health = workspace_health(records, ["w"])["w"]
    assert health == WorkspaceHealth(polled=10, failing=8, cause=None)


def test_a_key_of_another_workspace_is_said_once_as_agents_not_found() -> None:
    # The API answers 404 for an agent the key cannot see: every agent of the workspace.
    records = [failed("w", f"a{i}", Reason.NOT_FOUND) for i in range(3)]
    health = workspace_health(records, ["w"])["w"]
    assert health == WorkspaceHealth(polled=3, failing=0, cause="agents_not_found", not_found=3)


def test_a_404_is_an_answer_about_its_agent_while_the_others_answer() -> None:
    records = [failed("w", "gone", Reason.NOT_FOUND)] + [answered("w", f"b{i}") for i in range(9)]
    assert workspace_health(records, ["w"])["w"] == WorkspaceHealth(polled=10, not_found=1)


def test_one_agent_not_found_is_its_own_alert_not_its_workspaces() -> None:
    # Its own alert names it; a workspace of one has nothing to group.
    records = [failed("w", "only", Reason.NOT_FOUND)]
    assert workspace_health(records, ["w"])["w"].cause is None


def test_failures_come_before_not_found() -> None:
    # A revoked key turns every 404 into a 401: the failing polls decide while they are whole.
    records = [failed("w", f"a{i}", Reason.UNAUTHORIZED) for i in range(19)]
    records += [failed("w", "gone", Reason.NOT_FOUND)]
    assert workspace_health(records, ["w"])["w"].cause == "unauthorized"


def test_agents_never_polled_are_not_counted() -> None:
    records = [failed("w", "a1", Reason.UNAUTHORIZED)] + [unpolled("w", f"u{i}") for i in range(9)]
    assert workspace_health(records, ["w"])["w"].cause == "unauthorized"


def test_a_listing_failing_before_any_poll_fails_the_workspace() -> None:
    # A discovering workspace whose key is rejected never has an agent to poll.
    health = workspace_health([], ["w", "v"], {"w": "unauthorized", "v": "internal_error"})
    assert health["w"].cause == "unauthorized"
    assert health["v"].cause is None  # the monitor's own fault is no cause of the workspace's


def test_a_listing_failing_while_polls_answer_is_not_a_workspace_failing() -> None:
    # A key that may read links but not list them: the polls say the workspace works.
    health = workspace_health([answered("w", "a1")], ["w"], {"w": "unauthorized"})
    assert health["w"].cause is None


def test_a_tie_names_the_rejected_key_first() -> None:
    records = [failed("w", "a1", Reason.TIMEOUT), failed("w", "a2", Reason.UNAUTHORIZED)]
    assert workspace_health(records, ["w"])["w"].cause == "unauthorized"


def test_only_the_workspaces_asked_for_are_reported() -> None:
    records = [failed("gone", "a1", Reason.UNAUTHORIZED)]
    assert workspace_health(records, ["w"]) == {"w": WorkspaceHealth()}


def test_every_reason_has_a_cause_or_is_an_answer() -> None:
    assert {cause_of(r) for r in Reason} == {*FAILURE_CAUSES, None}
    assert cause_of(None) is None


@given(
    st.lists(st.one_of(st.none(), st.sampled_from(list(Reason))), min_size=1, max_size=60),
)
def test_whole_means_at_least_the_share_of_polled_agents(outcomes: list[Reason | None]) -> None:
    records = [
        answered("w", f"a{i}") if reason is None else failed("w", f"a{i}", reason)
        for i, reason in enumerate(outcomes)
    ]
    health = workspace_health(records, ["w"])["w"]
    failing = [r for r in outcomes if cause_of(r) is not None]
    not_found = outcomes.count(Reason.NOT_FOUND)
    whole = WHOLE_SHARE * len(outcomes)
    assert health.polled == len(outcomes)
    assert (health.failing, health.not_found) == (len(failing), not_found)
    assert (health.cause in FAILURE_CAUSES) == (len(failing) >= whole)
    assert (health.cause == "agents_not_found") == (len(failing) < whole <= not_found >= 2)
    if health.cause in FAILURE_CAUSES:
        # The cause is the one most agents fail with.
        counts = {c: sum(cause_of(r) == c for r in failing) for c in FAILURE_CAUSES}
        assert counts[health.cause] == max(counts.values())


def test_exactly_the_share_is_whole() -> None:
    records = [failed("w", f"a{i}", Reason.TIMEOUT) for i in range(9)] + [answered("w", "b")]
    assert workspace_health(records, ["w"])["w"].cause == "unreachable"


def test_archived_agents_are_left_out_of_the_verdict() -> None:
    # Polled at the discovery interval, their last polls may be a quarter of an hour old.
    stale = [failed("w", f"old{i}", Reason.SERVER_ERROR) for i in range(20)]
    stale = [dataclasses.replace(r, archived=True) for r in stale]
    records = [failed("w", "a1", Reason.UNAUTHORIZED), *stale, answered("w", "b")]
    assert workspace_health(records, ["w"])["w"] == WorkspaceHealth(polled=2, failing=1)
