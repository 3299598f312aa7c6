"""The runtime built in-process on a fake clock: cycles, verdicts, readiness, on-time alerts,
pacing and pauses, in milliseconds of real time and exactly repeatable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.typing import EventDict

from monitor.config.schema import Config
from monitor.model import AgentSummary, PollOutcome, Reason
from monitor.runtime.wiring import Runtime
from tests.conftest import config_data
from tests.fakeapi import FakeApi, after, expires, fails, missing
from tests.fakeclock import FakeClockLoop, fake_clock

KEY = "sk_fake_runtime_key"
DAY = 86400.0


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClockLoop]:
    with fake_clock(monkeypatch) as loop:
        yield loop


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def logged(loop: FakeClockLoop) -> Iterator[list[EventDict]]:
    """Every log line, stamped `at` with the fake wall clock."""

    def stamp(_: Any, __: str, event: EventDict) -> EventDict:
        event["at"] = loop.wall()
        return event

    structlog.reset_defaults()
    with structlog.testing.capture_logs(processors=[stamp]) as lines:
        yield lines


def make_config(agents: list[str], **sections: Any) -> Config:
    # The fake client answers: the base URL is never contacted.
    return Config.model_validate(config_data("http://127.0.0.1:9", agents, **sections))


def make_runtime(loop: FakeClockLoop, api: FakeApi, config: Config) -> Runtime:
    return Runtime(config, lambda _: KEY, clock=loop.wall, make_client=api.client)


def value(runtime: Runtime, name: str, **labels: str) -> float | None:
    text = runtime.metrics.render().body().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def state_of(runtime: Runtime, agent_id: str) -> str | None:
    text = runtime.metrics.render().body().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "elevenlabs_agent_link_state"
                and sample.labels["agent_id"] == agent_id
                and sample.value == 1
            ):
                return str(sample.labels["state"])
    return None


def events(lines: list[EventDict], event: str, **fields: Any) -> list[EventDict]:
    return [
        line
        for line in lines
        if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
    ]


async def running(runtime: Runtime, seconds: float) -> None:
    """Start the runtime and let `seconds` of fake time pass."""
    runtime.start()
    await asyncio.sleep(seconds)


# --- every poll ends with a verdict ---------------------------------------------------------


def test_a_poll_that_cannot_finish_in_its_cycle_ends_as_a_timeout(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    """The issue's case: answers in 6 s, timeout 1 s, one retry, a 2 s interval."""
    api.set("slow", after(6, expires(None)))
    api.set("fast", expires(None))
    config = make_config(
        ["slow", "fast"],
        elevenlabs={"timeout": "1s", "max_retries": 1},
        poll={"interval": "2s", "jitter": 0},
    )
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 1.99)
        # The first cycle's deadline (1.8 s) has passed: the slow poll was judged.
        failed = events(logged, "poll_failed", agent_id="slow")
        assert [(f["reason"], f["detail"]) for f in failed] == [
            ("timeout", "cut by the cycle's deadline")
        ]
        assert failed[0]["at"] - loop.start == pytest.approx(1.9)  # deadline + the cut grace
        assert value(runtime, "elevenlabs_agent_link_poll_errors_total", agent_id="slow") == 1
        assert runtime.health.last_cycle is not None
        assert value(runtime, "elevenlabs_link_monitor_last_cycle_timestamp_seconds") is not None
        assert runtime.health.cycles_overrun == 0
        assert runtime.ready()
        await asyncio.sleep(10)
        assert len(events(logged, "poll_failed", agent_id="slow")) == 6  # one per cycle
        assert state_of(runtime, "fast") == "ok"
        assert not events(logged, "cycle_overrun")
        assert not events(logged, "scheduler_problem")
        await runtime.stop()

    loop.run(main())


def test_a_poll_that_crashes_still_ends_with_a_verdict(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    """A bug while handling one answer is a failure of that agent, never silence."""

    async def crash() -> PollOutcome:
        raise ValueError("a bug")

    api.set("odd", crash)
    api.set("fine", expires(None))
    runtime = make_runtime(loop, api, make_config(["odd", "fine"]))

    async def main() -> None:
        await running(runtime, 1)
        assert events(logged, "poll_crashed", agent_id="odd", error="ValueError")
        failed = events(logged, "poll_failed", agent_id="odd")
        assert [f["reason"] for f in failed] == ["invalid_response"]
        assert (
            value(
                runtime,
                "elevenlabs_agent_link_poll_errors_total",
                agent_id="odd",
                reason="invalid_response",
            )
            == 1
        )
        assert state_of(runtime, "fine") == "ok"
        assert runtime.ready()
        await runtime.stop()

    loop.run(main())


def test_a_cycle_cut_short_is_counted_and_the_next_starts_where_it_stopped(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    """More agents than one worker can poll before the deadline: never started is overrun."""
    agents = [f"a{i}" for i in range(10)]
    for agent in agents:
        api.set(agent, after(0.5, expires(None)))
    config = make_config(
        agents, elevenlabs={"max_concurrency": 1}, poll={"interval": "2s", "jitter": 0}
    )
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 1.99)
        overrun = events(logged, "cycle_overrun")
        assert [o["unfinished"] for o in overrun] == [6]  # 4 polls of 0.5 s fit in 1.8 s
        assert runtime.health.last_cycle is None
        await asyncio.sleep(2)
        # The second cycle began with the first agent the first one never reached.
        second = [c.agent_id for c in api.calls if c.at >= 2.0]
        assert second[0] == "a4"
        assert runtime.health.cycles_overrun == 2
        await runtime.stop()

    loop.run(main())


def test_a_worst_case_longer_than_the_interval_is_simply_cut() -> None:
    config = make_config(
        ["a"], elevenlabs={"timeout": "30s", "max_retries": 5}, poll={"interval": "2s"}
    )
    assert config.poll.interval == 2


# --- readiness ------------------------------------------------------------------------------


def test_readiness_waits_for_first_polls_and_the_listing_then_holds(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    api.set("configured", expires(None))
    api.listing = [AgentSummary(agent_id="d1", name="one")]
    api.set("d1", after(5, expires(None)))
    config = make_config(
        ["configured"],
        discover=True,
        poll={"interval": "1h", "jitter": 0, "discovery_interval": "60s"},
    )
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        assert not runtime.ready()  # not started: no agents yet is not "all polled"
        await running(runtime, 1)
        assert not runtime.ready()  # d1's first poll has not ended yet
        await asyncio.sleep(5)
        assert runtime.ready()
        # 500 agents appear whose polls take a minute: the process stays ready.
        api.listing = [AgentSummary(agent_id=f"d{i}", name="") for i in range(500)]
        for i in range(2, 500):
            api.set(f"d{i}", after(60, expires(None)))
        await asyncio.sleep(60)
        assert len(runtime.store) == 501
        assert not runtime.store.ready
        assert runtime.ready()
        await runtime.stop()

    loop.run(main())


def test_a_failed_first_listing_is_not_ready(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    from monitor.model import PollFailure

    api.listing = PollFailure(Reason.UNAUTHORIZED, "HTTP 401 invalid_api_key", 401)
    config = make_config([], discover=True, poll={"discovery_interval": "10s"})
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 25)
        assert len(events(logged, "discovery_failed")) == 3
        assert not runtime.ready()
        api.listing = []
        await asyncio.sleep(10)
        assert runtime.ready()
        await runtime.stop()

    loop.run(main())


# --- on time --------------------------------------------------------------------------------


def test_a_threshold_is_crossed_on_time_while_the_api_is_down(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    expiry = loop.wall() + 34
    api.set("bot", expires(expiry))
    config = make_config(
        ["bot"],
        poll={"interval": "2s", "jitter": 0},
        thresholds={"warning": "30s", "critical": "10s"},
    )
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 1)
        assert state_of(runtime, "bot") == "ok"
        api.set("bot", fails())
        await asyncio.sleep(40)
        alerts = events(logged, "link_alert", agent_id="bot")
        assert [a["state"] for a in alerts] == ["warning", "critical", "expired"]
        for alert, crossing in zip(alerts, (expiry - 30, expiry - 10, expiry), strict=True):
            assert crossing <= alert["at"] < crossing + 0.3  # batched into quarter seconds
        assert value(runtime, "elevenlabs_agent_link_poll_success", agent_id="bot") == 0
        await runtime.stop()

    loop.run(main())


def test_alerts_repeat_on_time_for_many_agents_with_no_poll(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    agents = [f"m{i:03d}" for i in range(300)]
    for agent in agents:
        api.set(agent, missing())
    config = make_config(agents, alerts={"repeat_interval": "1m"})
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 3 * 60 + 1)
        for agent in agents:
            times = [a["at"] - loop.start for a in events(logged, "link_alert", agent_id=agent)]
            assert len(times) == 4
            assert all(abs(t - 60 * i) < 0.3 for i, t in enumerate(times)), times
        assert api.count() == len(agents)  # one poll each: the repeats come from the clock
        await runtime.stop()

    loop.run(main())


def test_a_revoked_link_alerts_within_an_interval_and_recovers(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    api.set("bot", expires(loop.wall() + 30 * DAY, "v1"))
    runtime = make_runtime(loop, api, make_config(["bot"], poll={"interval": "10s", "jitter": 0}))

    async def main() -> None:
        await running(runtime, 5)
        api.set("bot", missing())
        await asyncio.sleep(6)
        alert = events(logged, "link_alert", agent_id="bot")
        assert [(a["state"], a["previous_state"]) for a in alert] == [("missing", "ok")]
        api.set("bot", expires(loop.wall() + 30 * DAY, "v2"))
        await asyncio.sleep(10)
        assert events(logged, "link_recovered", agent_id="bot")[0]["previous_state"] == "missing"
        assert value(runtime, "elevenlabs_agent_link_token_rotations_total", agent_id="bot") == 1
        await runtime.stop()

    loop.run(main())


# --- pacing ---------------------------------------------------------------------------------


def test_later_cycles_spread_their_polls_over_the_interval(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    agents = [f"p{i}" for i in range(5)]
    for agent in agents:
        api.set(agent, expires(None))
    runtime = make_runtime(loop, api, make_config(agents, poll={"interval": "5s", "jitter": 0}))

    async def main() -> None:
        await running(runtime, 9)
        first, second = api.times()[:5], api.times()[5:10]
        assert first == [0.0] * 5  # a burst, to be ready at once
        # One agent every 0.8 x 5 s / 5 = 0.8 s.
        assert second == pytest.approx([5.0, 5.8, 6.6, 7.4, 8.2])
        await runtime.stop()

    loop.run(main())


def test_a_long_outage_costs_one_poll_per_agent_per_cycle_and_no_burst_after(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    api.set("bot", expires(None))
    config = make_config(["bot"], poll={"interval": "10s", "jitter": 0, "spread": False})
    runtime = make_runtime(loop, api, config)

    async def main() -> None:
        await running(runtime, 5)
        known = value(runtime, "elevenlabs_agent_link_last_success_timestamp_seconds")
        api.set("bot", fails())
        await asyncio.sleep(100)
        assert api.count() == 11
        assert value(runtime, "elevenlabs_agent_link_poll_success") == 0
        assert value(runtime, "elevenlabs_agent_link_last_success_timestamp_seconds") == known
        assert state_of(runtime, "bot") == "ok"  # what it said keeps being evaluated
        api.set("bot", expires(None))
        await asyncio.sleep(10)
        assert api.count() == 12
        await runtime.stop()

    loop.run(main())


def test_no_pile_up_after_the_process_is_paused(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    api.set("bot", expires(None))
    runtime = make_runtime(loop, api, make_config(["bot"], poll={"interval": "1s", "jitter": 0}))

    async def main() -> None:
        await running(runtime, 2.5)
        assert api.count() == 3
        loop.virtual += 4  # a frozen host: four cycles' time passes with nothing running
        await asyncio.sleep(0.5)
        # The missed cycles are coalesced into one run, not fired back to back.
        assert api.times()[3:] == [6.5]
        await asyncio.sleep(1)
        assert api.times()[4:] == [7.0]
        assert not events(logged, "scheduler_problem")
        await runtime.stop()

    loop.run(main())


# --- reload ---------------------------------------------------------------------------------


def test_reload_adds_and_removes_agents_and_applies_thresholds_and_interval(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    for agent in ("kept", "removed", "added"):
        api.set(agent, expires(loop.wall() + 3 * DAY))
    runtime = make_runtime(loop, api, make_config(["kept", "removed"]))

    async def main() -> None:
        await running(runtime, 1)
        assert {a["agent_id"] for a in events(logged, "link_alert")} == {"kept", "removed"}
        runtime.apply(
            make_config(
                ["kept", "added"],
                poll={"interval": "10s", "jitter": 0},
                thresholds={"warning": "2d"},
            ),
            {"default": KEY},
        )
        await asyncio.sleep(1)
        assert state_of(runtime, "removed") is None
        assert state_of(runtime, "added") == "ok"
        assert api.count("kept") == 1  # what was known is kept, not polled again
        assert events(logged, "link_recovered", agent_id="kept")
        await asyncio.sleep(30)
        assert api.count("kept") == 4  # the new interval
        await runtime.stop()

    loop.run(main())


def test_series_of_a_removed_workspace_leave_metrics(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    from monitor.model import PollFailure

    def two(discovering: bool) -> Config:
        workspaces: list[dict[str, Any]] = [
            {"name": "prod", "base_url": "http://127.0.0.1:9", "agents": [{"id": "p1"}]},
        ]
        if discovering:
            workspaces.append({"name": "eu", "base_url": "http://127.0.0.1:9", "discover": True})
        return Config.model_validate(
            {"workspaces": workspaces, "poll": {"discovery_interval": "10s"}}
        )

    api.set("p1", expires(None))
    api.listing = [AgentSummary(agent_id="e1", name="")]
    runtime = make_runtime(loop, api, two(discovering=True))

    async def main() -> None:
        await running(runtime, 1)
        api.listing = PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503)
        await asyncio.sleep(10)
        discovered = "elevenlabs_link_monitor_discovered_agents"
        errors = "elevenlabs_link_monitor_discovery_errors_total"
        assert value(runtime, discovered, workspace="eu") == 1
        assert value(runtime, errors, workspace="eu") == 1
        runtime.apply(two(discovering=False), {"prod": KEY})
        assert value(runtime, discovered, workspace="eu") is None
        assert value(runtime, errors, workspace="eu") is None
        assert state_of(runtime, "e1") is None
        await runtime.stop()

    loop.run(main())


# --- the exposure sweep ---------------------------------------------------------------------


def test_the_archived_sweep_is_spread_over_the_discovery_interval(
    loop: FakeClockLoop, api: FakeApi, logged: list[EventDict]
) -> None:
    """A burst of thousands of archived links would take the rate limit from the live agents'
    cycle all at once: the sweep's polls are released over 80% of the discovery interval."""
    archived = [f"old{i}" for i in range(10)]
    api.archived = [AgentSummary(agent_id=a, archived=True) for a in archived]
    config = make_config(
        [], poll={"interval": "1h", "jitter": 0, "discovery_interval": "100s"}, discover=True
    )
    runtime = make_runtime(loop, api, config)

    async def scenario() -> None:
        await running(runtime, 99)
        await runtime.stop()

    loop.run(scenario())
    times = sorted(t for a in archived for t in api.times(a))
    assert len(times) == len(archived)  # each archived link polled once in the interval
    # Released one every 8 s (80 s over 10), not all at once.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 7.9, times
