"""uvicorn's h11 protocol with deadlines: the one place that subclasses a uvicorn internal.

`GuardedH11Protocol` extends `uvicorn.protocols.http.h11_impl.H11Protocol`, which uvicorn
does not document as public API, and relies on these private names of that module
(UVICORN_PRIVATE_NAMES):

- `H11Protocol.handle_events`, `H11Protocol.on_response_complete` and
  `H11Protocol.send_400_response(msg)`: methods overridden, which uvicorn calls itself
  (after data is received, as each request's `on_response`, on a malformed request);
- `H11Protocol.loop`, `.transport`, `.conn` (the `h11.Connection`), `.cycle` (the request's
  `RequestResponseCycle`, or None) and `.connections` (the server's set of open
  protocols): attributes uvicorn sets in `H11Protocol.__init__`, read here;
- `RequestResponseCycle.response_complete`: whether the answer has been sent.

Everything else it uses is public: asyncio's `Protocol` methods (`connection_made`,
`connection_lost`, `pause_writing`, `resume_writing`) and transports, and h11's `Response`,
`Data`, `EndOfMessage` and `Connection.send`; no private h11 name. Its own additions
(`header_timeout`, `write_timeout`, `_deadline`, `_write_deadline`, `_idle_since`, `_arm`,
`_disarm`, `_expire`, `_idle`, `_cut`, `_resumed`) must not be uvicorn's names.

pyproject.toml pins uvicorn to the minor versions this was tested with;
tests/unit/test_h11guard.py fails when the installed uvicorn lacks one of these names, changes an
overridden method's parameters, or takes one of the guard's own names.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# What GuardedH11Protocol relies on in uvicorn.protocols.http.h11_impl: see above.
UVICORN_PRIVATE_NAMES = (
    "H11Protocol.handle_events",
    "H11Protocol.on_response_complete",
    "H11Protocol.send_400_response",
    "H11Protocol.loop",
    "H11Protocol.transport",
    "H11Protocol.conn",
    "H11Protocol.cycle",
    "H11Protocol.connections",
    "RequestResponseCycle.response_complete",
)

HEADER_TIMEOUT = 10.0  # from connect (or the end of the last answer) to a whole request head
MAX_CONNECTIONS = 256  # above this the longest-idle connection makes room for the new one
# A client that stops reading pauses our writes; past this its connection is cut, so an
# answer that cannot drain never holds a request slot for good.
WRITE_TIMEOUT = 10.0
# On every answer, uvicorn's own errors included: a browser must never guess a type.
SECURITY_HEADERS = [("x-content-type-options", "nosniff")]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving a request head, and one for a
    client that stops reading an answer.

    uvicorn has none: its keep-alive timer starts only after an answer and any byte
    received stops it, so a connection that sends nothing, or a byte now and then, is held
    for good. Here every connection gets `header_timeout` seconds, from connect or from the
    end of the last answer, to send a whole request head; and past MAX_CONNECTIONS the
    longest-idle connection is closed to make room. An answer whose writes stay paused
    (the client's window full) for `write_timeout` seconds has its connection aborted:
    uvicorn would wait for the drain for good, holding the request's slot.
    """

    header_timeout = HEADER_TIMEOUT
    write_timeout = WRITE_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > MAX_CONNECTIONS:
            idle = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c._idle()]
            if idle:
                min(idle, key=lambda c: c._idle_since).transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._resumed()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._cut)

    def resume_writing(self) -> None:
        self._resumed()
        super().resume_writing()

    def _cut(self) -> None:
        self._write_deadline = None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # A reset, not a FIN behind megabytes the client will never read: the kernel
            # drops the unsent answer at once instead of holding it for minutes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _resumed(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            self._disarm()  # a whole request head arrived: the app has it now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self._idle()):
            self._arm()

    def send_400_response(self, msg: str) -> None:
        # uvicorn writes this one itself, without its default headers.
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
            *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS),
        ]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers)))
        self.transport.write(self.conn.send(h11.Data(data=msg.encode("ascii"))))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._idle_since = self.loop.time()
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._idle() and not self.transport.is_closing():
            # Nothing to answer: a slow or silent client just loses its connection.
            self.transport.abort()
