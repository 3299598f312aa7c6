"""The exposition: every contract metric, built from the store at scrape time."""

from __future__ import annotations

import asyncio
import gzip
import http.client
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from monitor.evaluate import (
    AGENT_NOT_FOUND,
    TOKEN_MISSING,
    Kind,
    Observation,
    State,
    Thresholds,
)
from monitor.model import AgentKey, Health, LinkAnswer, PollFailure, Reason, Target
from monitor.revision import revision
from monitor.store import AgentRecord, Store
from monitor.web import metrics as metrics_module
from monitor.web import server
from monitor.web.metrics import (
    AGENT_FAMILIES,
    CHUNK_BYTES,
    ERRORS,
    OPENMETRICS_CONTENT_TYPE,
    RUN_AGENTS,
    Exposition,
    Metrics,
)
from monitor.web.server import HttpServer, build_app, wants_openmetrics
from tests.settings import config_with, holder

# What Prometheus 2.x sends when it scrapes (OpenMetrics preferred).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

NOW = 1_800_000_000.0
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def openmetrics_families(text: str) -> list[Metric]:
    """Parsed by prometheus-client's OpenMetrics parser, which refuses what the format forbids."""
    return list(openmetrics_parser.text_string_to_metric_families(text))  # type: ignore[no-untyped-call]


def families(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().body().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def agent(agent_id: str, name: str = "", workspace: str = "default") -> Target:
    return Target(AgentKey(workspace, agent_id), name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def metrics(store: Store, clock: Clock) -> Metrics:
    return Metrics(store, Health(), holder(), clock)


def labels(agent_id: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"workspace": "default", "agent_id": agent_id, **extra}.items()))


def test_every_contract_metric_with_its_labels(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a", "support"), agent("m"), agent("n"), agent("u")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + 3 * DAY), "f1"), AgentKey("default", "a"), NOW - 5
    )
    store.record(LinkAnswer(TOKEN_MISSING, None), AgentKey("default", "m"), NOW)
    store.record(PollFailure(Reason.NOT_FOUND, "HTTP 404", 404), AgentKey("default", "n"), NOW)
    found = families(metrics)
    assert found["elevenlabs_agent_info"] == {
        labels("a", agent_name="support"): 1,
        labels("m", agent_name=""): 1,
        labels("n", agent_name=""): 1,
        labels("u", agent_name=""): 1,
    }
    assert found["elevenlabs_agent_link_expiry_timestamp_seconds"] == {labels("a"): NOW + 3 * DAY}
    assert found["elevenlabs_agent_link_token_missing"][labels("m")] == 1
    assert found["elevenlabs_agent_link_token_missing"][labels("a")] == 0
    states = found["elevenlabs_agent_link_state"]
    assert len(states) == 4 * 7
    current = {dict(k)["agent_id"]: dict(k)["state"] for k, v in states.items() if v == 1}
    assert current == {"a": "warning", "m": "missing", "n": "not_found", "u": "unknown"}
    assert found["elevenlabs_agent_link_poll_success"][labels("n")] == 0
    assert found["elevenlabs_agent_link_poll_success"][labels("m")] == 1
    assert found["elevenlabs_agent_link_last_success_timestamp_seconds"] == {
        labels("a"): NOW - 5,
        labels("m"): NOW,
    }
    assert found["elevenlabs_agent_link_poll_errors_total"] == {labels("n", reason="not_found"): 1}
    assert found["elevenlabs_agent_link_token_rotations_total"][labels("a")] == 0
    assert found["elevenlabs_link_monitor_agents"] == {(): 4}
    assert found["elevenlabs_link_monitor_config_last_reload_successful"] == {(): 1}
    ((build, one),) = found["elevenlabs_link_monitor_build_info"].items()
    assert one == 1
    assert dict(build) == {"version": "0.1.0", "revision": revision()}
    assert "elevenlabs_link_monitor_poll_duration_seconds_bucket" in found
    assert "elevenlabs_agent_link_expires_in_seconds" not in found
    assert not any(name.endswith("_created") for name in found)


def test_state_follows_the_clock_between_polls(
    store: Store, metrics: Metrics, clock: Clock
) -> None:
    store.sync([agent("a")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + DAY + 10), "f"), AgentKey("default", "a"), NOW
    )
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="warning")] == 1
    clock.now += 10
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="critical")] == 1
    clock.now += DAY
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="expired")] == 1


def test_an_agent_no_longer_watched_leaves_every_series(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a"), agent("gone")])
    store.record(PollFailure(Reason.TIMEOUT, "t"), AgentKey("default", "gone"), NOW)
    assert "gone" in metrics.render().body().decode()
    store.sync([agent("a")])
    assert '"gone"' not in metrics.render().body().decode()


def test_hostile_names_are_escaped_and_read_back_intact(store: Store, metrics: Metrics) -> None:
    name = 'evil"} 1\nfake_metric{x="1" \\ <img src=x onerror=alert(1)>'
    store.sync([agent("a", name)])
    found = families(metrics)
    assert found["elevenlabs_agent_info"] == {labels("a", agent_name=name): 1}
    assert "fake_metric" not in found
    parsed = openmetrics_families(metrics.render(openmetrics=True).body().decode())
    info = next(f for f in parsed if f.name == "elevenlabs_agent_info")
    assert [s.labels["agent_name"] for s in info.samples] == [name]


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the agents render_agent is called for, in order."""
    import monitor.web.metrics as module

    calls: list[str] = []
    original = module.render_agent

    def counting(record: AgentRecord, state: State, thresholds: Thresholds) -> tuple[bytes, ...]:
        calls.append(record.key.agent_id)
        return original(record, state, thresholds)

    monkeypatch.setattr(module, "render_agent", counting)
    return calls


def test_unchanged_agents_are_not_rendered_again(
    store: Store, clock: Clock, rendered: list[str]
) -> None:
    metrics = Metrics(store, Health(), holder(), clock)
    store.sync([agent(f"a{i}") for i in range(10)])
    metrics.render()
    assert len(rendered) == 10
    rendered.clear()
    first = metrics.render().body()
    assert metrics.render(openmetrics=True).body().startswith(first.split(b"\n", 2)[0])
    store.record(LinkAnswer(AGENT_NOT_FOUND, None), AgentKey("default", "a3"), NOW)
    second = metrics.render().body()
    assert rendered == ["a3"]
    assert first != second


def test_an_agent_coming_or_leaving_renders_no_other_again(
    store: Store, clock: Clock, rendered: list[str]
) -> None:
    """Discovery adding one agent to thousands lays the runs out again from their kept lines."""
    metrics = Metrics(store, Health(), holder(), clock)
    store.sync([agent(f"a{i}") for i in range(600)])
    metrics.render()
    rendered.clear()
    store.sync([agent(f"a{i}") for i in range(1, 600)] + [agent("new")])  # a0 left, new came
    kept = Exposition(metrics.agents.render(), 0, "").body()
    assert rendered == ["new"]
    fresh = Metrics(store, Health(), holder(), clock).agents.render()
    assert kept == Exposition(fresh, 0, "").body()


def test_relative_expiry_is_optional(store: Store, clock: Clock) -> None:
    relative = Metrics(store, Health(), holder(expose_relative=True), clock)
    store.sync([agent("a")])
    store.record(LinkAnswer(Observation(Kind.LINK, NOW + 100), "f"), AgentKey("default", "a"), NOW)
    clock.now += 40
    assert families(relative)["elevenlabs_agent_link_expires_in_seconds"] == {labels("a"): 60}


def test_only_the_info_series_carries_the_name(store: Store, metrics: Metrics) -> None:
    """A rename changes one series, and no other series' identity."""
    store.sync([agent("a", "old-name")])
    store.record(PollFailure(Reason.TIMEOUT, "t"), AgentKey("default", "a"), NOW)
    before = families(metrics)
    store.sync([agent("a", "new-name")])
    after = families(metrics)
    assert after.pop("elevenlabs_agent_info") == {labels("a", agent_name="new-name"): 1}
    assert before.pop("elevenlabs_agent_info") == {labels("a", agent_name="old-name"): 1}
    assert {name: set(series) for name, series in after.items()} == {
        name: set(series) for name, series in before.items()
    }
    per_agent = [name for name in after if name.startswith("elevenlabs_agent_")]
    assert len(per_agent) == 6  # expiry is absent (no answer yet); threshold_seconds is here
    for name in per_agent:
        for series in after[name]:
            assert "agent_name" not in dict(series), name


def test_openmetrics_is_valid_and_says_the_same(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a", "support"), agent("n")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + 3 * DAY), "f1"), AgentKey("default", "a"), NOW
    )
    store.record(PollFailure(Reason.NOT_FOUND, "HTTP 404", 404), AgentKey("default", "n"), NOW)
    exposition = metrics.render(openmetrics=True)
    assert exposition.content_type == OPENMETRICS_CONTENT_TYPE
    text = exposition.body().decode()
    assert text.endswith("\n# EOF\n")
    assert text.count("# EOF") == 1
    assert exposition.length == len(exposition.body())
    # The OpenMetrics parser refuses what the format forbids (a counter family named with
    # its `_total`, a missing `# EOF`, families split in two, ...).
    parsed = {f.name: f for f in openmetrics_families(text)}
    errors = parsed["elevenlabs_agent_link_poll_errors"]
    assert errors.type == "counter"
    assert [(s.name, s.labels["reason"], s.value) for s in errors.samples] == [
        ("elevenlabs_agent_link_poll_errors_total", "not_found", 1)
    ]
    assert parsed["elevenlabs_agent_link_token_rotations"].type == "counter"
    assert parsed["elevenlabs_agent_info"].type == "gauge"
    om_samples = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in parsed.values()
        for s in f.samples
    }
    text_samples = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(metrics.render().body().decode())
        for s in f.samples
    }
    # The process collector's figures move between two renders; everything else is equal.
    assert {s for s in om_samples if not s[0].startswith("process_")} == {
        s for s in text_samples if not s[0].startswith("process_")
    }


def test_the_text_format_names_a_counter_with_its_total(store: Store, metrics: Metrics) -> None:
    store.sync([agent("a")])
    text = metrics.render().body().decode()
    assert "# TYPE elevenlabs_agent_link_token_rotations_total counter\n" in text
    assert "# EOF" not in text


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0", True),
        ("application/openmetrics-text", True),
        # A version this exporter does not speak: prometheus-client moves on to the next.
        ("application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4;q=0.5", False),
        ("text/plain;version=1.0.0,application/openmetrics-text;version=1.0.0", False),
        ("text/plain", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_negotiation_follows_prometheus_client(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


def _serve(metrics: Metrics) -> Iterator[tuple[str, int]]:
    """The real HTTP server on loopback, on its own event loop in a thread."""
    import threading

    ready = threading.Event()
    stop: asyncio.Event | None = None
    address: list[tuple[str, int]] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = HttpServer(build_app(metrics.render, lambda: True, lambda: True), "127.0.0.1", 0)
        address.append(await server.start())
        ready.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    assert ready.wait(10), "the server did not start"
    try:
        yield address[0]
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def served(store: Store, metrics: Metrics) -> Iterator[tuple[str, int]]:
    # Over two chunks' worth, so that the body is streamed in several pieces.
    store.sync([agent(f"a{i}", f"bot-{i}") for i in range(600)])
    yield from _serve(metrics)


def _get(
    address: tuple[str, int], headers: dict[str, str]
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def test_prometheus_gets_openmetrics_gzipped(served: tuple[str, int]) -> None:
    response, body = _get(served, {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.getheader("content-type") == OPENMETRICS_CONTENT_TYPE
    assert response.getheader("content-encoding") == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in openmetrics_families(text)}
    assert {"elevenlabs_agent_info", "elevenlabs_agent_link_token_rotations"} <= names


def test_a_plain_client_gets_the_text_format_whole(served: tuple[str, int]) -> None:
    response, body = _get(served, {})
    assert response.status == 200
    assert response.getheader("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    assert response.getheader("content-encoding") is None
    # Streamed, yet with its length announced: no chunked encoding for Prometheus to undo.
    assert response.getheader("content-length") == str(len(body))
    assert len(body) > 2 * CHUNK_BYTES
    assert b"# EOF" not in body
    families_ = list(text_string_to_metric_families(body.decode()))
    assert len(next(f for f in families_ if f.name == "elevenlabs_agent_info").samples) == 600


def test_between_polls_a_scrape_reuses_the_kept_columns(
    store: Store, metrics: Metrics, clock: Clock
) -> None:
    store.sync([agent(f"a{i}") for i in range(50)])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + DAY + 10), "f"), AgentKey("default", "a1"), NOW
    )
    first = metrics.agents.render()
    clock.now += 5  # time passes, no state changes
    second = metrics.agents.render()
    # Header, column, header, column...: the columns are the very same objects.
    assert len(first) == len(second) == 2 * len(AGENT_FAMILIES)
    assert all(a is b for a, b in zip(first[1::2], second[1::2], strict=True))
    clock.now += 10  # a1 crosses into critical: only the clock moved, yet it shows
    third = metrics.agents.render()
    assert b'agent_id="a1",state="critical"} 1.0' in Exposition(third, 0, "").body()
    assert not all(a is b for a, b in zip(second[1::2], third[1::2], strict=True))


def _blocks(pieces: list[bytes]) -> list[bytes]:
    """The runs' blocks of an AgentExposition's pieces (the rest are family headers)."""
    return [p for p in pieces if not p.startswith(b"# HELP ")]


def test_the_samples_are_held_once_in_runs_of_agents(store: Store, metrics: Metrics) -> None:
    store.sync([agent(f"a{i}", f"bot-{i}") for i in range(3000)])
    pieces = metrics.agents.render()
    runs = -(-3000 // RUN_AGENTS)
    # A header and one block per run for each family: nothing else is kept per agent.
    assert len(pieces) == len(AGENT_FAMILIES) * (1 + runs)
    info = b"".join(pieces[1 : 1 + runs])
    assert info.count(b"\n") == 3000
    assert info.count(b'agent_name="bot-2999"') == 1


def test_a_changed_agent_copies_only_its_run_and_only_what_changed(
    store: Store, metrics: Metrics
) -> None:
    store.sync([agent(f"a{i}") for i in range(3 * RUN_AGENTS)])
    before = metrics.agents.render()
    key = AgentKey("default", f"a{RUN_AGENTS + 5}")  # in the second run
    store.record(PollFailure(Reason.TIMEOUT, "timeout"), key, NOW)
    after = metrics.agents.render()
    runs = 3
    # Every (1 + runs)th piece is a family's header, made anew each time.
    replaced = [
        i
        for i, (a, b) in enumerate(zip(before, after, strict=True))
        if i % (1 + runs) and a is not b
    ]
    changed = {AGENT_FAMILIES[i // (1 + runs)] for i in replaced}
    # A failed poll: its success, its errors and its state (unknown: no answer yet).
    # A first poll that fails: a new errors counter; poll_success was 0 already and the
    # state is still unknown, so their blocks are kept.
    assert changed == {ERRORS}
    assert all(i % (1 + runs) == 2 for i in replaced)  # the second run's block, no other
    assert (
        Exposition(after, 0, "").body()
        == Exposition(Metrics(store, Health(), holder(), Clock()).agents.render(), 0, "").body()
    )


_ids = st.sampled_from([f"a{i}" for i in range(8)])
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("sync"), st.lists(_ids, unique=True)),
        st.tuples(st.just("answer"), _ids, st.floats(-2 * DAY, 30 * DAY)),
        st.tuples(st.just("fail"), _ids, st.sampled_from(list(Reason))),
        st.tuples(st.just("wait"), st.floats(0, 8 * DAY)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps=_steps)
def test_kept_runs_always_read_as_a_fresh_rendering(steps: list[tuple[Any, ...]]) -> None:
    """However agents come, change, cross thresholds and leave, the runs kept from scrape to
    scrape read exactly as the same agents rendered from nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics_module, "RUN_AGENTS", 3)  # runs of 3 agents: many seams
        _replay(steps)


def _replay(steps: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    store = Store()
    kept = Metrics(store, Health(), holder(), clock)
    for step in steps:
        match step:
            case ("sync", ids):
                store.sync([agent(i, f"bot-{i}") for i in ids])
            case ("answer", agent_id, expires_in):
                expiry = Observation(Kind.LINK, clock.now + expires_in)
                store.record(
                    LinkAnswer(expiry, str(expires_in)), AgentKey("default", agent_id), clock.now
                )
            case ("fail", agent_id, reason):
                store.record(PollFailure(reason, "x"), AgentKey("default", agent_id), clock.now)
            case ("wait", seconds):
                clock.now += seconds
        fresh = Metrics(store, Health(), holder(), clock)
        assert (
            Exposition(kept.agents.render(), 0, "").body()
            == Exposition(fresh.agents.render(), 0, "").body()
        )


def test_new_thresholds_re_evaluate_every_agent(store: Store, clock: Clock) -> None:
    settings = holder()
    metrics = Metrics(store, Health(), settings, clock)
    store.sync([agent("a")])
    store.record(
        LinkAnswer(Observation(Kind.LINK, NOW + 3 * DAY), "f"), AgentKey("default", "a"), NOW
    )
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="warning")] == 1
    settings.swap(config_with(warning=2 * DAY))
    assert families(metrics)["elevenlabs_agent_link_state"][labels("a", state="ok")] == 1


def test_a_large_body_is_sent_in_slices_that_add_up(store: Store, metrics: Metrics) -> None:
    store.sync([agent(f"a{i}", f"bot-{i}") for i in range(1000)])
    exposition = metrics.render(openmetrics=True)
    chunks = list(exposition.chunks())
    assert len(chunks) > 3
    assert max(len(c) for c in chunks) <= CHUNK_BYTES
    assert b"".join(chunks) == exposition.body()
    assert sum(len(c) for c in chunks) == exposition.length


def test_a_body_over_the_gzip_limit_goes_uncompressed(
    served: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "GZIP_MAX_BYTES", 100_000)
    response, body = _get(served, {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    assert response.getheader("content-type") == OPENMETRICS_CONTENT_TYPE
    assert response.getheader("content-encoding") is None
    assert response.getheader("content-length") == str(len(body))
    assert body.endswith(b"# EOF\n")
