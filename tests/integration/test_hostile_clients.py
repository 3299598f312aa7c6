"""The daemon's own port stays up whatever its clients do: idle and slow sockets time out and
never count against requests, scrapers that stop reading never take the probes and are cut
off, SIGTERM ends the process within 5 s even with a scraper that stopped reading, and every
answer, errors included, carries `X-Content-Type-Options: nosniff`."""

from __future__ import annotations

import asyncio
import http.client
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.web.metrics import CONTENT_TYPE, Exposition
from monitor.web.server import MAX_REQUESTS, METRICS_REQUESTS, HttpServer, build_app
from tests.conftest import ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

pytestmark = pytest.mark.integration
StartDaemon = Callable[..., Daemon]
IDLE_CLIENTS = 100  # uvicorn's limit_concurrency of 64 made 63 enough to take the port


def _address(daemon: Daemon) -> tuple[str, int]:
    host, port = daemon.url.rsplit("/", 1)[-1].rsplit(":", 1)
    return host, int(port)


def _request(host: str, port: int, method: str, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.fixture
def daemon(standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon) -> Daemon:
    standin.set("bot", link(canary_token("c"), None))
    started = start_daemon(write_config(["bot"]))
    wait_until(lambda: started.state_of("bot") == "ok")
    return started


def test_idle_connections_do_not_take_the_probes_or_the_scrape(daemon: Daemon) -> None:
    host, port = _address(daemon)
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(IDLE_CLIENTS)]
    try:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert _request(host, port, "GET", path).status == 200, path
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
    response = _request(*_address(daemon), method, path)
    assert response.status == status
    assert response.getheader("x-content-type-options") == "nosniff"


def test_a_malformed_request_is_refused_with_nosniff_too(daemon: Daemon) -> None:
    with socket.create_connection(_address(daemon), timeout=5) as sock:
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
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(_address(daemon))
    stalled.settimeout(5)
    stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(1024).startswith(b"HTTP/1.1 200")  # the answer has begun; never read on
    daemon.signal(signal.SIGTERM)
    try:
        assert daemon.proc.wait(5) == 0
    finally:
        stalled.close()


def _stalled_scrape(address: tuple[str, int]) -> socket.socket:
    """A /metrics request from a client that reads the head of the answer, then nothing."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(address)
    stalled.settimeout(5)
    stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(1024).startswith(b"HTTP/1.1 200")  # the answer has begun
    return stalled


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
    stalled = [_stalled_scrape(_address(daemon)) for _ in range(METRICS_REQUESTS)]
    try:
        # Before: the scrape and the probes shared one allowance, and both answered 503.
        assert daemon.get("/healthz") == (200, "ok\n")
        assert daemon.get("/readyz") == (200, "ready\n")
        assert daemon.get("/metrics")[0] == 503  # the scrape's own allowance is used up
    finally:
        for sock in stalled:
            sock.close()


# --- the protocol in-process, with short deadlines ------------------------------------


@contextmanager
def _server(
    header_timeout: float,
    routes: list[Route] | None = None,
    *,
    write_timeout: float = 10.0,
    metrics: Exposition | None = None,
) -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """An HttpServer on its own loop in a thread; yields its port and the loop."""
    loop = asyncio.new_event_loop()
    exposition = metrics or Exposition([], 0, CONTENT_TYPE)

    def render(_: bool) -> Exposition:
        return exposition

    app = build_app(render, lambda: True, lambda: True, routes or [])
    server = HttpServer(
        app, "127.0.0.1", 0, header_timeout=header_timeout, write_timeout=write_timeout
    )
    _, port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, loop
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sends",
    [
        [],  # connects and says nothing
        [b"GET /metr"],  # half a request line
        [b"G", b"E", b"T", b" ", b"/"],  # a byte now and then (each byte reset uvicorn's timer)
    ],
)
def test_a_client_that_never_completes_a_request_head_is_cut_off(sends: list[bytes]) -> None:
    with _server(0.5) as (port, _), socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(0.2)
        started = time.monotonic()
        closed = False
        for chunk in sends:
            s.sendall(chunk)
            closed = _closed_by_server(s)
            if closed:
                break
        wait_until(lambda: closed or _closed_by_server(s), 10, "the server to close the socket")
        # Cut off by the head deadline, not by the keep-alive timer or the test's own end.
        assert time.monotonic() - started < 5


def test_a_keep_alive_connection_gets_a_new_deadline_after_each_answer() -> None:
    with _server(0.5) as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
        assert conn.sock is not None
        sock = conn.sock
        sock.settimeout(0.2)
        sock.sendall(b"G")  # one byte stops uvicorn's keep-alive timer for good
        wait_until(lambda: _closed_by_server(sock), 10, "the server to close the socket")
        conn.close()


def test_slow_pages_never_hold_up_the_probes() -> None:
    release = asyncio.Event()

    async def slow(_: Request) -> Response:
        await release.wait()
        return Response("late")

    with _server(10.0, [Route("/slow", slow)]) as (port, loop):
        busy = []
        for _ in range(40):  # more than the pages' own allowance
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/slow")
            busy.append(conn)
        wait_until(
            lambda: _request("127.0.0.1", port, "GET", "/slow").status == 503,
            10,
            "the pages' allowance to be used up",
        )
        for path in ("/metrics", "/healthz", "/readyz"):
            response = _request("127.0.0.1", port, "GET", path)
            assert response.status == 200, path
        loop.call_soon_threadsafe(release.set)
        answers = [conn.getresponse().read() for conn in busy]
        assert answers.count(b"late") == MAX_REQUESTS
        for conn in busy:
            conn.close()


def test_a_scraper_that_stops_reading_is_cut_off_and_frees_its_slot() -> None:
    chunk = b"#" * 1023 + b"\n"
    big = Exposition([chunk] * 16 * 1024, 16 * 1024 * len(chunk), CONTENT_TYPE)  # 16 MiB
    with _server(10.0, write_timeout=0.5, metrics=big) as (port, _):
        stalled = [_stalled_scrape(("127.0.0.1", port)) for _ in range(METRICS_REQUESTS)]
        try:
            # Before: the answers waited for the drain for good; now their sockets are reset.
            wait_until(lambda: all(map(_cut_off, stalled)), 10, "the stalled answers to be cut")
            # Their slots are free again (before: 503 for as long as they stayed connected).
            wait_until(
                lambda: _request("127.0.0.1", port, "GET", "/metrics").status == 200,
                10,
                "the scrape's allowance to be free",
            )
        finally:
            for sock in stalled:
                sock.close()


def _cut_off(sock: socket.socket) -> bool:
    """Whether the server has aborted the connection, without reading (which would drain)."""
    poller = select.poll()
    poller.register(sock, 0)  # POLLHUP and POLLERR are always reported
    return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(200))
