"""The HTTP side: /metrics, /healthz and /readyz on the daemon's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any

import uvicorn
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.config import TlsSettings
from monitor.metrics import Exposition

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

        async def body() -> AsyncIterator[bytes | memoryview]:
            # Pieces of the cached rendering, joined a chunk at a time: the whole body is
            # never copied at once.
            for chunk in exposition.chunks():
                yield chunk

        headers = {**_NO_STORE, "content-length": str(exposition.length)}
        response = StreamingResponse(body(), media_type=exposition.content_type, headers=headers)
        app: ASGIApp = response
        if exposition.length <= GZIP_MAX_BYTES:
            # Starlette's middleware negotiates from Accept-Encoding and compresses.
            app = GZipMiddleware(response, minimum_size=1024, compresslevel=GZIP_LEVEL)
        await app(scope, receive, send)


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


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    def __init__(
        self, app: Starlette, host: str, port: int, tls: TlsSettings | None = None
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
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
            # A hostile or broken client must not starve the scrape.
            limit_concurrency=64,
            timeout_keep_alive=15,
            h11_max_incomplete_event_size=16 * 1024,
            http="h11",
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
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
