"""A real HTTP server on 127.0.0.1 that stands in for the ElevenLabs API in tests.

Each agent gets a scripted answer that a test can change while the daemon runs; the
server counts and timestamps every request so limits can be checked where they matter.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[["_Handler"], None]


def link(token: str | None, expires: float | None = None, **extra: Any) -> Answer:
    """A 200 answer: a token (with an optional expiry) or `token: null`."""

    def answer(handler: _Handler) -> None:
        agent_id = handler.agent_id
        body: dict[str, Any] = {"agent_id": agent_id, "token": None, **extra}
        if token is not None:
            body["token"] = {
                "agent_id": agent_id,
                "conversation_token": token,
                "expiration_time_unix_secs": None if expires is None else int(expires),
                "purpose": "shareable_link",
            }
        handler.reply(200, json.dumps(body).encode())

    return answer


def status(code: int, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    def answer(handler: _Handler) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        handler.reply(code, payload, headers)

    return answer


def raw(code: int, body: bytes) -> Answer:
    return lambda handler: handler.reply(code, body)


def hang(seconds: float, then: Answer | None = None) -> Answer:
    """Answer after `seconds` (waits on an event so a test can end it early)."""

    def answer(handler: _Handler) -> None:
        handler.server.release.wait(seconds)  # type: ignore[attr-defined]
        (then or status(503))(handler)

    return answer


def huge(size: int) -> Answer:
    """A 200 answer of `size` bytes, streamed (a client must stop reading early)."""

    def answer(handler: _Handler) -> None:
        chunk = b" " * 65536
        try:
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(size))
            handler.end_headers()
            for _ in range(size // len(chunk)):
                handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    return answer


def trickle(body: bytes, every: float) -> Answer:
    """A 200 answer that arrives one byte per `every` seconds."""

    def answer(handler: _Handler) -> None:
        try:
            handler.send_response(200)
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if handler.server.release.wait(every):  # type: ignore[attr-defined]
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass

    return answer


def reset_midway() -> Answer:
    """Half an answer, then a TCP reset."""

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"agent_id": "x", "tok')
        handler.wfile.flush()
        # SO_LINGER with a zero timeout turns close() into a RST.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    return answer


@dataclass
class Request:
    at: float
    path: str
    headers: dict[str, str]


@dataclass
class StandIn:
    api_key: str
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # GET /v1/convai/agents: (agent_id, name, archived) rows, or an Answer to fail with.
    listing: list[tuple[str, str, bool]] | Answer = field(default_factory=list)
    # The listing's filters, as the API applies them: `search` (in the name, any case), `tags`
    # (any of, the parameter repeated) and `created_by_user_id` (`@me` is `user_id`).
    tags: dict[str, list[Any]] = field(default_factory=dict)  # agent_id -> its tags
    creators: dict[str, str] = field(default_factory=dict)  # agent_id -> its creator
    user_id: str = "user_standin"  # the key's user
    listing_queries: list[dict[str, list[str]]] = field(default_factory=list)  # as received
    # agent_id -> its row's `last_call_time_unix_secs`, any JSON value (null: never called);
    # an agent not here has no such field (unknown).
    last_calls: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        self._server.release = threading.Event()  # type: ignore[attr-defined]
        # A short poll interval: close() waits for it (0.5 s by default, at every test's end).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def set(self, agent_id: str, answer: Answer) -> None:
        with self.lock:
            self.answers[agent_id] = answer

    def max_per_window(self, window: float = 1.0) -> int:
        """The most requests that started within any `window` seconds."""
        with self.lock:
            starts = sorted(r.at for r in self.requests)
        best = 0
        first = 0
        for last, at in enumerate(starts):
            while at - starts[first] >= window:
                first += 1
            best = max(best, last - first + 1)
        return best

    def count(self, agent_id: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if agent_id is None or f"/{agent_id}/" in r.path)

    def lists(self, agent_id: str, name: str, query: dict[str, list[str]]) -> bool:
        """Whether the listing's filters in `query` keep this agent."""
        search = query.get("search", [""])[0].lower()
        wanted = query.get("tags")
        creator = query.get("created_by_user_id", [""])[0]
        creator = self.user_id if creator == "@me" else creator
        return (
            search in name.lower()
            and (not wanted or any(t in wanted for t in self.tags.get(agent_id, [])))
            and (not creator or self.creators.get(agent_id) == creator)
        )

    def close(self) -> None:
        self._server.release.set()  # type: ignore[attr-defined]
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """Keeps a handler's error instead of printing it: a client that hangs up early (a
    refused gzip bomb) is expected here, and the traceback would land in whatever captures
    stderr at that moment, such as an in-process `check`."""

    errors: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None:
            self.__dict__.setdefault("errors", []).append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the client's
    # delayed ACK held each answer about 40 ms.
    disable_nagle_algorithm = True
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def standin(self) -> StandIn:
        return self.server.standin  # type: ignore[attr-defined, no-any-return]

    @property
    def agent_id(self) -> str:
        return self.path.split("/")[4] if self.path.count("/") >= 5 else ""

    def do_GET(self) -> None:
        standin = self.standin
        with standin.lock:
            standin.in_flight += 1
            standin.max_in_flight = max(standin.max_in_flight, standin.in_flight)
            standin.requests.append(
                Request(time.time(), self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            answer = standin.answers.get(self.agent_id)
        try:
            if self.headers.get("xi-api-key") != standin.api_key:
                status(401, {"detail": {"status": "invalid_api_key", "message": "bad key"}})(self)
            elif self.path.split("?")[0] == "/v1/convai/agents":
                self.list_agents()
            elif not self.path.endswith("/link") or answer is None:
                status(404, {"detail": {"status": "agent_not_found", "message": "no agent"}})(self)
            else:
                answer(self)
        finally:
            with standin.lock:
                standin.in_flight -= 1

    def list_agents(self) -> None:
        listing = self.standin.listing
        if callable(listing):
            listing(self)
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        standin = self.standin
        with standin.lock:
            standin.listing_queries.append(query)
        if query.keys() & {"search", "tags", "created_by_user_id"}:
            # Only when asked: 50,000 rows filtered for each of 501 pages took 9 s a listing.
            listing = [row for row in listing if standin.lists(row[0], row[1], query)]
        if "archived" in query:
            # As the API: `archived=true` lists the archived agents only, `false` the others.
            archived = query["archived"][0] == "true"
            listing = [row for row in listing if row[2] is archived]
        size = int(query.get("page_size", ["30"])[0])
        start = int(query.get("cursor", ["0"])[0])
        page = listing[start : start + size]
        more = start + size < len(listing)
        calls = standin.last_calls
        body = {
            "agents": [
                {
                    "agent_id": a,
                    "name": n,
                    "archived": arch,
                    "tags": standin.tags.get(a, []),
                    **({"last_call_time_unix_secs": calls[a]} if a in calls else {}),
                }
                for a, n, arch in page
            ],
            "next_cursor": str(start + size) if more else None,
            "has_more": more,
        }
        self.reply(200, json.dumps(body).encode())

    def reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer


def gzip_layers(body: bytes, layers: int) -> bytes:
    """`body` gzipped `layers` times over."""
    for _ in range(layers):
        body = gzip.compress(body, compresslevel=9)
    return body


def zeros_gzipped(size: int, layers: int) -> bytes:
    """`size` zero bytes gzipped `layers` times: a few KB that inflate to `size` (a bomb)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    block = bytes(1024 * 1024)
    inner = b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()
    return gzip_layers(inner, layers - 1)


def encoded(code: int, body: bytes, coding: str) -> Answer:
    """An answer whose body is sent as given, labelled with `Content-Encoding: coding`."""
    return lambda handler: handler.reply(code, body, {"content-encoding": coding})
