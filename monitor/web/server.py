"""The HTTP side: /metrics, /healthz and /readyz on the daemon's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable, Generator, Sequence
from typing import Any

import uvicorn
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.config.schema import TlsSettings
from monitor.web._h11guard import (
    HEADER_TIMEOUT,
    SECURITY_HEADERS,
    WRITE_TIMEOUT,
    GuardedH11Protocol,
)
from monitor.web.metrics import Exposition

_NO_STORE = {"cache-control": "no-store"}
# Level 1: several times faster than the default 9, and the body still shrinks about
# twentyfold.
GZIP_LEVEL = 1
# Larger answers go uncompressed even to a scraper that accepts gzip (identity is always
# acceptable unless refused): at 10,000 agents (12 MB) compressing cost more CPU than the
# rest of the scrape, and scrapes stay on the cluster's network. About 3,000 agents.
GZIP_MAX_BYTES = 4 * 1024 * 1024


def wants_openmetrics(accept: str) -> bool:
    """Whether a scraper's Accept header gets OpenMetrics, as prometheus-client decides."""
    _, content_type = choose_encoder(accept)
    return content_type.startswith("application/openmetrics-text")


class MetricsEndpoint:
    """`/metrics` as an ASGI app: negotiated format, streamed body, standard gzip.

    A class rather than a function, so that Starlette's Route treats it as an ASGI app.
    """

    def __init__(self, render: Callable[[bool], Exposition]) -> None:
        self._render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        exposition = self._render(wants_openmetrics(request.headers.get("accept", "")))

        headers = {**_NO_STORE, "content-length": str(exposition.length)}
        head = Response(media_type=exposition.content_type, headers=headers).raw_headers

        async def response(_: Scope, __: Receive, send: Send) -> None:
            # Pieces of the cached rendering, joined a chunk at a time: the whole body is
            # never copied at once. Not a StreamingResponse: under uvicorn's ASGI 2.3 it runs
            # an anyio task group per answer to watch for a disconnect (1.2 MiB of modules at
            # the first scrape); uvicorn itself drops what is sent after one.
            await send({"type": "http.response.start", "status": 200, "headers": head})
            for chunk in exposition.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        app: ASGIApp = response
        if exposition.length <= GZIP_MAX_BYTES:
            # Starlette's middleware negotiates from Accept-Encoding and compresses.
            app = GZipMiddleware(response, minimum_size=1024, compresslevel=GZIP_LEVEL)
        await app(scope, receive, send)


# Idle and slow clients must not take the port from Prometheus and the kubelet (the
# connection's own limits, HEADER_TIMEOUT, MAX_CONNECTIONS and WRITE_TIMEOUT, are _h11guard's).
KEEP_ALIVE = 5  # uvicorn's idle timer between requests
MAX_REQUESTS = 32  # requests in flight at once on the pages, besides the reserves below
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
PROBE_REQUESTS = 16  # in flight at once on the probes, whatever /metrics and the pages do
METRICS_REQUESTS = 16  # in flight at once on /metrics, whatever the pages do
SHUTDOWN_GRACE = 2  # for answers in flight at SIGTERM: a client that stopped reading ...
SHUTDOWN_LIMIT = 3.5  # ... is cut off, so the process ends within 5 s of SIGTERM


def build_app(
    render_metrics: Callable[[bool], Exposition],
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    async def healthz(_: Request) -> Response:
        if alive():
            return PlainTextResponse("ok\n", headers=_NO_STORE)
        return PlainTextResponse("scheduler stopped\n", status_code=503, headers=_NO_STORE)

    async def readyz(_: Request) -> Response:
        if ready():
            return PlainTextResponse("ready\n", headers=_NO_STORE)
        return PlainTextResponse(
            "waiting for the first poll of every agent\n", status_code=503, headers=_NO_STORE
        )

    async def index(_: Request) -> Response:
        return PlainTextResponse(
            "elevenlabs-link-monitor: see /metrics, /healthz, /readyz\n", headers=_NO_STORE
        )

    own = {getattr(r, "path", None) for r in extra_routes}
    index_route = [] if "/" in own else [Route("/", index, methods=["GET", "HEAD"])]
    return Starlette(
        routes=[
            *extra_routes,
            *index_route,
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", MetricsEndpoint(render_metrics), methods=["GET", "HEAD"]),
        ]
    )


class RequestGate:
    """503 above MAX_REQUESTS in flight, with separate allowances for the probes and for the
    scrape: requests are counted, never sockets (uvicorn's limit_concurrency counts both,
    so a handful of idle connections turned every probe into a 503). The probes have their
    own, since /metrics answers are megabytes that slow readers can hold for WRITE_TIMEOUT.

    uvicorn adds SECURITY_HEADERS to every answer, its own errors included; the app's own
    copies are dropped so that none is sent twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._in_flight = {"probes": 0, "metrics": 0, "pages": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        if path in PROBE_PATHS:
            pool, limit = "probes", PROBE_REQUESTS
        elif path == "/metrics":
            pool, limit = "metrics", METRICS_REQUESTS
        else:
            pool, limit = "pages", MAX_REQUESTS
        if self._in_flight[pool] >= limit:
            busy = PlainTextResponse(
                "too many requests in flight\n", status_code=503, headers=_NO_STORE
            )
            await busy(scope, receive, send)
            return
        self._in_flight[pool] += 1
        try:
            await self._app(scope, receive, _without(send, _SECURITY_NAMES))
        finally:
            self._in_flight[pool] -= 1


_SECURITY_NAMES = frozenset(name.encode() for name, _ in SECURITY_HEADERS)


def _without(send: Send, names: frozenset[bytes]) -> Send:
    async def filtered(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
            message = {**message, "headers": headers}
        await send(message)

    return filtered


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    def __init__(
        self,
        app: Starlette,
        host: str,
        port: int,
        tls: TlsSettings | None = None,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        tls_options: dict[str, Any] = {}
        if tls is not None:
            tls_options = {
                "ssl_certfile": str(tls.cert_file),
                "ssl_keyfile": str(tls.key_file),
            }
            if tls.client_ca_file is not None:
                tls_options["ssl_ca_certs"] = str(tls.client_ca_file)
                tls_options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        protocol = type(
            "GuardedH11Protocol",
            (GuardedH11Protocol,),
            {"header_timeout": header_timeout, "write_timeout": write_timeout},
        )
        config = uvicorn.Config(
            RequestGate(app),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            headers=SECURITY_HEADERS,
            lifespan="off",
            # Limits count requests (RequestGate), not sockets; idle sockets time out.
            limit_concurrency=None,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
            h11_max_incomplete_event_size=16 * 1024,
            http=protocol,
            ws="none",
            **tls_options,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        """Bind, then serve in the background; return the bound address.

        We bind ourselves because uvicorn answers a bind error with sys.exit().
        """
        config = self._server.config
        if not config.loaded:
            try:
                config.load()  # reads the TLS files: a bad one is an error before serving
            except (OSError, ssl.SSLError) as exc:
                raise OSError(
                    exc.errno, f"cannot load the TLS files: {exc.strerror or exc}"
                ) from None
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        try:
            sock = socket.create_server((config.host, config.port), family=family)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                exc.errno, f"cannot listen on {config.host}:{config.port}: {reason}"
            ) from None
        sock.set_inheritable(True)
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
        # create_server's is 0: without this, Nagle holds every answer's body until the
        # client's delayed ACK of its headers, 40 ms per request. Accepted sockets inherit it.
        if family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the HTTP server stopped before it started")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Stop serving within SHUTDOWN_LIMIT seconds, whatever the clients do."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            async with asyncio.timeout(SHUTDOWN_LIMIT):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
        except asyncio.CancelledError:
            pass
        finally:
            # A client that stopped reading keeps its socket until it is cut off.
            for connection in list(self._server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        done, _ = await asyncio.wait([self._task], timeout=1.0)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: the server's own end is not ours to report
