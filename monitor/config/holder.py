"""The one config holder: the running config and every value derived from it, swapped whole.

As blackbox_exporter's `SafeConfig`: a reload builds a new `Settings` and swaps it in at once,
and every piece reads `holder.current` when it needs a value, so no piece can hold a part of
an old config while another reads the new one. Derived values are built here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config.schema import Config, WorkspaceConfig
from monitor.evaluate import Thresholds


@dataclass(frozen=True, slots=True)
class Settings:
    """One config and what is derived from it, built once per load."""

    config: Config
    workspaces: tuple[WorkspaceConfig, ...]
    discovering: frozenset[str]  # the workspaces that discover their agents
    thresholds: Thresholds
    repeat_interval: float
    expose_relative: bool

    @classmethod
    def of(cls, config: Config) -> Settings:
        workspaces = tuple(config.resolved_workspaces())
        return cls(
            config=config,
            workspaces=workspaces,
            discovering=frozenset(w.name for w in workspaces if w.discover),
            thresholds=Thresholds(config.thresholds.warning, config.thresholds.critical),
            repeat_interval=config.alerts.repeat_interval,
            expose_relative=config.metrics.expose_relative,
        )


class ConfigHolder:
    """Holds the current `Settings`; `swap` replaces them whole."""

    def __init__(self, config: Config) -> None:
        self._current = Settings.of(config)

    @property
    def current(self) -> Settings:
        return self._current

    def swap(self, config: Config) -> Settings:
        """Make `config` current; return the settings it replaces."""
        previous, self._current = self._current, Settings.of(config)
        return previous
