"""The process: the runtime and the HTTP server, started and stopped, driven by signals."""

from __future__ import annotations

import asyncio
import signal

import structlog

from monitor import __version__
from monitor.runtime.wiring import Runtime
from monitor.web.server import HttpServer, build_app
from monitor.web.status.routes import status_routes

log = structlog.get_logger("monitor")


class Daemon:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stopping = asyncio.Event()
        self._server: HttpServer | None = None
        self.address: tuple[str, int] | None = None

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def start(self) -> None:
        runtime = self.runtime
        config = runtime.config
        pages = (
            status_routes(
                runtime.store,
                runtime.health,
                runtime.settings,
                runtime.clock,
                ready=runtime.ready,
            )
            if config.server.status_page
            else []
        )
        self._server = HttpServer(
            build_app(runtime.metrics.render, self._alive, runtime.ready, pages),
            config.server.host,
            config.server.port,
            config.server.tls,
        )
        self.address = await self._server.start()
        # After the server: a port that is taken stops the process before any poll.
        runtime.start()
        scheme = "https" if config.server.tls else "http"
        base = f"{scheme}://{self.address[0]}:{self.address[1]}"
        log.info(
            "monitor_started",
            version=__version__,
            address=base,
            metrics=f"{base}/metrics",
            agents=len(runtime.store),
            workspaces=[w.name for w in config.resolved_workspaces()],
            shard=str(runtime.shard) if runtime.shard else None,
        )

    async def stop(self) -> None:
        self._stopping.set()
        log.info("monitor_stopping")
        await self.runtime.stop()
        if self._server is not None:
            await self._server.stop()
        log.info("monitor_stopped")

    def _on_sighup(self) -> None:
        if not self._stopping.is_set():  # a reload after SIGTERM would only be cancelled
            self.runtime.jobs.spawn(self.runtime.reload("SIGHUP"))

    def _alive(self) -> bool:
        return self.runtime.jobs.running and not self._stopping.is_set()
