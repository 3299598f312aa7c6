"""`demo`: the daemon against the simulated API, with agents in every state, no key needed."""

from __future__ import annotations

import secrets

import structlog

from monitor.config.schema import Config
from monitor.elevenlabs.simulator import SimulatedApi, demo_agents
from monitor.runtime.daemon import Daemon
from monitor.runtime.wiring import Runtime
from monitor.web.server import HttpServer

log = structlog.get_logger("monitor.demo")


def demo_config(base_url: str, host: str, port: int) -> Config:
    agents = [{"id": a.agent_id, "name": a.name} for a in demo_agents()]
    return Config.model_validate(
        {
            "elevenlabs": {"base_url": base_url, "max_retries": 1, "timeout": "5s"},
            "agents": agents,
            "poll": {"interval": "15s", "jitter": "1s"},
            "alerts": {"repeat_interval": "5m"},
            "server": {"host": host, "port": port},
        }
    )


async def run_demo(host: str, port: int) -> int:
    key = "demo_" + secrets.token_hex(8)  # a throwaway key, still treated as a secret
    api = SimulatedApi(demo_agents(), key)
    api_server = HttpServer(api.app, "127.0.0.1", 0)
    api_host, api_port = await api_server.start()
    try:
        config = demo_config(f"http://{api_host}:{api_port}", host, port)
        daemon = Daemon(Runtime(config, lambda _: key))
        log.info(
            "demo_started",
            simulated_api=f"http://{api_host}:{api_port}",
            hint="agents in every state; agent_demo_crossing enters warning after 45s",
        )
        return await daemon.run()
    finally:
        await api_server.stop()
