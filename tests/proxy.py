"""Real network parts for egress tests, each on its own asyncio loop in a thread, on 127.0.0.1:

- `ForwardProxy`: an HTTP forward proxy, as squid or a corporate proxy: a plain-HTTP request in
  absolute form (`GET http://host:port/path`) is forwarded, `CONNECT host:port` opens a tunnel
  (for HTTPS). It records every request, can require Basic credentials (407 otherwise), can
  refuse everything with a fixed status, and can map host names to addresses (a name that
  no DNS knows, reachable only through the proxy).
- `TlsFront`: TLS terminated in front of a plain server (the stand-in API), with a test CA's
  certificate (tests/certs.py): the stand-in over HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Self

from tests.certs import PrivateCa

MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Seen:
    """One request the proxy received: its method, target and Proxy-Authorization."""

    method: str
    target: str
    authorization: str | None


class _LoopServer:
    """An asyncio server on its own loop in a daemon thread; `close()` stops both."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server = self._run(asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass  # a client that went away, or a TLS handshake the client refused
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, half_close: bool = True
) -> None:
    """Copy until EOF, then (by default) half-close."""
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Bytes both ways between two connections until both ends are done."""
    try:
        await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))
    finally:
        b[1].close()


def _head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


class ForwardProxy(_LoopServer):
    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        refuse: int | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        self.credentials = credentials
        self.refuse = refuse
        self.hosts = hosts or {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL with userinfo (percent-encoded)."""
        quote = urllib.parse.quote
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if method is None or s.method == method)

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # one client connection may carry several requests (keep-alive)
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            line, headers = _head(raw)
            method, target, _version = line.split(" ", 2)
            authorization = next(
                (v for k, v in headers if k.lower() == "proxy-authorization"), None
            )
            with self._lock:
                self.seen.append(Seen(method, target, authorization))
            refusal = self._refusal(authorization)
            if refusal is not None:
                writer.write(
                    f'HTTP/1.1 {refusal} Refused\r\nProxy-Authenticate: Basic realm="test"\r\n'
                    "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                return
            if method == "CONNECT":
                await self._tunnel(target, reader, writer)
                return
            if not await self._forward(method, target, headers, reader, writer):
                return

    def _refusal(self, authorization: str | None) -> int | None:
        if self.refuse is not None:
            return self.refuse
        if self.credentials is None:
            return None
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        return None if authorization == expected else 407

    def _address(self, host: str, port: int) -> tuple[str, int]:
        return self.hosts.get(host, host), port

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        try:
            upstream = await asyncio.open_connection(*self._address(host.strip("[]"), int(port)))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), upstream)

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """One absolute-form request forwarded on a fresh upstream connection; True if the
        client's connection can carry another request."""
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return False
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        body = await reader.readexactly(length) if length else b""
        path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        kept = [
            (k, v)
            for k, v in headers
            if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self._address(url.hostname, url.port or 80)
            )
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return True
        try:
            up_writer.write(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
            await up_writer.drain()
            answer = await up_reader.readuntil(b"\r\n\r\n")
            _, answer_headers = _head(answer)
            writer.write(answer)
            await _pipe(up_reader, writer, half_close=False)
        finally:
            up_writer.close()
        # Without a length the answer ended with the upstream's close: so must the client's.
        return any(k.lower() == "content-length" for k, _ in answer_headers)


class TlsFront(_LoopServer):
    """HTTPS on 127.0.0.1 in front of the plain-HTTP server at `upstream` (the stand-in's
    URL), with the server certificate `ca` signed."""

    def __init__(self, upstream: str, ca: PrivateCa) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.cert_file, ca.key_file)
        self._upstream = int(upstream.rsplit(":", 1)[1])
        self.handshakes = 0
        super().__init__(context)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1  # asyncio completed the handshake before calling us
        upstream = await asyncio.open_connection("127.0.0.1", self._upstream)
        await _splice((reader, writer), upstream)
