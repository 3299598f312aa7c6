"""The status page (`/`) and its JSON API (`/api/v1/...`), read from the state store."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute

from monitor.config import Config
from monitor.metrics import Health
from monitor.store import Store


def status_routes(
    store: Store,
    health: Health,
    config: Callable[[], Config],
    clock: Callable[[], float],
) -> list[BaseRoute]:
    """Routes of the status page and the JSON API (none yet)."""
    del store, health, config, clock
    return []
