"""The daemon's own port stays up whatever its clients do: idle and slow sockets time out and
never count against requests, scrapers that stop reading never take the probes and are cut
off, SIGTERM ends the process within 5 s even with a scraper that stopped reading, and every
answer, errors included, carries `X-Content-Type-Options: nosniff`."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator

import pytest

from monitor.web.server import METRICS_REQUESTS
from tests.clients import address, request, stalled_scrape
from tests.conftest import ConfigWriter, canary_token, running_daemon, write_config_file
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

StartDaemon = Callable[..., Daemon]
IDLE_CLIENTS = 100  # uvicorn's limit_concurrency of 64 made 63 enough to take the port


@pytest.fixture(scope="module")
def daemon(module_standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the tests below: they only read it, or hold connections they close."""
    module_standin.set("bot", link(canary_token("c"), None))
    path = tmp_path_factory.mktemp("daemon") / "config.yaml"
    with running_daemon(write_config_file(path, module_standin.url, ["bot"])) as started:
        wait_until(lambda: started.state_of("bot") == "ok")
        yield started


def test_idle_connections_do_not_take_the_probes_or_the_scrape(daemon: Daemon) -> None:
    host, port = address(daemon)
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(IDLE_CLIENTS)]
    try:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert request(host, port, "GET", path).status == 200, path
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/metrics", 200),
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/", 200),
        ("GET", "/api/v1/agents", 200),
        ("GET", "/no-such-page", 404),
        ("POST", "/metrics", 405),
        ("HEAD", "/healthz", 200),
    ],
)
def test_every_answer_says_nosniff(daemon: Daemon, method: str, path: str, status: int) -> None:
    response = request(*address(daemon), method, path)
    assert response.status == status
    assert response.getheader("x-content-type-options") == "nosniff"


def test_a_malformed_request_is_refused_with_nosniff_too(daemon: Daemon) -> None:
    with socket.create_connection(address(daemon), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = sock.recv(4096)
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400")
    assert b"x-content-type-options: nosniff" in head


def test_sigterm_ends_the_daemon_within_5s_with_a_scraper_that_stopped_reading(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    # Long ids make a /metrics answer of several MB: far more than the socket buffers hold.
    agents = [f"agent_{n:05d}_" + "x" * 200 for n in range(2000)]
    daemon = start_daemon(write_config(agents, elevenlabs={"max_requests_per_second": 1}))
    stalled = stalled_scrape(address(daemon))  # the answer has begun; never read on
    daemon.signal(signal.SIGTERM)
    try:
        assert daemon.proc.wait(5) == 0
    finally:
        stalled.close()


def test_scrapers_that_stopped_reading_never_take_the_probes(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    # 1,200 long ids: a /metrics answer of about 5 MB, more than the socket buffers hold
    # (about 3 MB on loopback with a 4 KB receive buffer), so each answer stays in flight.
    agents = [f"agent_{n:04d}_" + "x" * 240 for n in range(1200)]
    for agent in agents:
        standin.set(agent, link(canary_token("s"), None))
    path = write_config(agents, elevenlabs={"max_requests_per_second": 500})
    daemon = start_daemon(path)
    wait_until(lambda: daemon.get("/readyz")[0] == 200, 30, "the first poll of every agent")
    stalled = [stalled_scrape(address(daemon)) for _ in range(METRICS_REQUESTS)]
    try:
        # Before: the scrape and the probes shared one allowance, and both answered 503.
        assert daemon.get("/healthz") == (200, "ok\n")
        assert daemon.get("/readyz") == (200, "ready\n")
        assert daemon.get("/metrics")[0] == 503  # the scrape's own allowance is used up
    finally:
        for sock in stalled:
            sock.close()
