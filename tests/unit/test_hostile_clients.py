"""The daemon's HTTP server in-process, with short deadlines: a client that never completes a
request head is cut off, slow pages never hold up the probes, and a scraper that stops
reading is cut off and frees its slot."""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.web._h11guard import GuardedH11Protocol
from monitor.web.metrics import CONTENT_TYPE, Exposition
from monitor.web.server import MAX_REQUESTS, METRICS_REQUESTS, HttpServer, build_app
from tests.clients import request, stalled_scrape
from tests.daemon import wait_until


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


@pytest.fixture
def head_deadlines(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every time a connection's head deadline passed: whether it cut the connection off."""
    passed: list[bool] = []
    expire = GuardedH11Protocol._expire

    def recorded(self: GuardedH11Protocol) -> None:
        passed.append(self._idle() and not self.transport.is_closing())
        expire(self)

    monkeypatch.setattr(GuardedH11Protocol, "_expire", recorded)
    return passed


@pytest.mark.parametrize(
    "sends",
    [
        [],  # connects and says nothing
        [b"GET /metr"],  # half a request line
        [b"G", b"E", b"T", b" ", b"/"],  # a byte now and then (each byte reset uvicorn's timer)
    ],
)
def test_a_client_that_never_completes_a_request_head_is_cut_off(
    sends: list[bytes], head_deadlines: list[bool]
) -> None:
    with _server(0.5) as (port, _), socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(0.2)
        closed = False
        for chunk in sends:
            s.sendall(chunk)
            closed = _closed_by_server(s)
            if closed:
                break
        wait_until(lambda: closed or _closed_by_server(s), 10, "the server to close the socket")
    # Cut off by the head deadline, not by the keep-alive timer or the test's own end.
    assert head_deadlines == [True]


def test_a_keep_alive_connection_gets_a_new_deadline_after_each_answer(
    head_deadlines: list[bool],
) -> None:
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
    # The deadline armed again after the answer is what cut it off.
    assert head_deadlines == [True]


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
            lambda: request("127.0.0.1", port, "GET", "/slow").status == 503,
            10,
            "the pages' allowance to be used up",
        )
        for path in ("/metrics", "/healthz", "/readyz"):
            response = request("127.0.0.1", port, "GET", path)
            assert response.status == 200, path
        loop.call_soon_threadsafe(release.set)
        answers = [conn.getresponse().read() for conn in busy]
        assert answers.count(b"late") == MAX_REQUESTS
        for conn in busy:
            conn.close()


def test_a_scraper_that_stops_reading_is_cut_off_and_frees_its_slot() -> None:
    chunk = b"#" * 1023 + b"\n"
    pieces = [chunk] * 16 * 1024
    big = Exposition(pieces, 16 * 1024 * len(chunk), CONTENT_TYPE)  # 16 MiB
    with _server(10.0, write_timeout=0.5, metrics=big) as (port, _):
        stalled = [stalled_scrape(("127.0.0.1", port)) for _ in range(METRICS_REQUESTS)]
        try:
            # Before: the answers waited for the drain for good; now their sockets are reset.
            wait_until(lambda: all(map(_cut_off, stalled)), 10, "the stalled answers to be cut")
            # Their slots are free again (before: 503 for as long as they stayed connected).
            wait_until(
                lambda: request("127.0.0.1", port, "GET", "/metrics").status == 200,
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
