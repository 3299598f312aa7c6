"""HTTP clients for the daemon's own port, well-behaved or not, over plain sockets."""

from __future__ import annotations

import http.client
import socket

from tests.daemon import Daemon


def address(daemon: Daemon) -> tuple[str, int]:
    """The daemon's listening host and port."""
    host, port = daemon.url.rsplit("/", 1)[-1].rsplit(":", 1)
    return host, int(port)


def request(host: str, port: int, method: str, path: str) -> http.client.HTTPResponse:
    """One request on its own connection, the answer read whole."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def stalled_scrape(where: tuple[str, int]) -> socket.socket:
    """A /metrics request from a client that reads the head of the answer, then nothing."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(where)
    stalled.settimeout(5)
    stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(1024).startswith(b"HTTP/1.1 200")  # the answer has begun
    return stalled
