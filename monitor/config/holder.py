"""The one config holder: the running config and every value derived from it, swapped whole.

As blackbox_exporter's `SafeConfig`: a reload builds a new `Settings` and swaps it in at once,
and every piece reads `holder.current` when it needs a value, so no piece can hold a part of
an old config while another reads the new one. Derived values are built here and only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config.schema import Config, ThresholdOverride, WorkspaceConfig
from monitor.evaluate import Thresholds
from monitor.model import AgentKey, Labels, merge_labels


@dataclass(frozen=True, slots=True)
class Settings:
    """One config and what is derived from it, built once per load."""

    config: Config
    workspaces: tuple[WorkspaceConfig, ...]
    discovering: frozenset[str]  # the workspaces that discover their agents
    thresholds: Thresholds  # the global pair (`thresholds:`)
    repeat_interval: float
    expose_relative: bool
    active_window: float  # `usage.active_window`: an agent not called within it is idle
    # An agent's own pair where it sets one, else its workspace's where that sets one, else
    # the global pair: resolved key by key, once, and shared (one object per distinct level).
    workspace_thresholds: Mapping[str, Thresholds]
    agent_thresholds: Mapping[AgentKey, Thresholds]
    # Configured owner labels: a workspace's, and a configured agent's (its workspace's
    # overridden key by key by its own), sorted by name, empty values left out.
    workspace_labels: Mapping[str, Labels]
    agent_labels: Mapping[AgentKey, Labels]

    @classmethod
    def of(cls, config: Config) -> Settings:
        workspaces = tuple(config.resolved_workspaces())
        default = Thresholds(config.thresholds.warning, config.thresholds.critical)
        workspace_thresholds: dict[str, Thresholds] = {}
        agent_thresholds: dict[AgentKey, Thresholds] = {}
        workspace_labels: dict[str, Labels] = {}
        agent_labels: dict[AgentKey, Labels] = {}
        for workspace in workspaces:
            pair = _overridden(default, workspace.thresholds)
            if pair is not default:
                workspace_thresholds[workspace.name] = pair
            labels = merge_labels((), workspace.labels.items())
            if labels:
                workspace_labels[workspace.name] = labels
            for agent in workspace.agents:
                key = AgentKey(workspace.name, agent.id)
                own = _overridden(pair, agent.thresholds)
                if own is not pair:
                    agent_thresholds[key] = own
                if agent.labels:
                    agent_labels[key] = merge_labels(labels, agent.labels.items())
        return cls(
            config=config,
            workspaces=workspaces,
            discovering=frozenset(w.name for w in workspaces if w.discover),
            thresholds=default,
            repeat_interval=config.alerts.repeat_interval,
            expose_relative=config.metrics.expose_relative,
            active_window=config.usage.active_window,
            workspace_thresholds=workspace_thresholds,
            agent_thresholds=agent_thresholds,
            workspace_labels=workspace_labels,
            agent_labels=agent_labels,
        )

    def thresholds_for(self, key: AgentKey) -> Thresholds:
        """The pair an agent is evaluated with: its own, else its workspace's, else global.
        A discovered agent has its workspace's."""
        own = self.agent_thresholds.get(key)
        if own is not None:
            return own
        return self.workspace_thresholds.get(key.workspace, self.thresholds)

    def labels_for(self, key: AgentKey) -> Labels:
        """The configured owner labels of an agent (a discovered one: its workspace's)."""
        own = self.agent_labels.get(key)
        if own is not None:
            return own
        return self.workspace_labels.get(key.workspace, ())


def _overridden(pair: Thresholds, override: ThresholdOverride | None) -> Thresholds:
    """`pair` with what `override` sets, key by key; `pair` itself when it changes nothing."""
    if override is None:
        return pair
    warning = pair.warning if override.warning is None else override.warning
    critical = pair.critical if override.critical is None else override.critical
    if (warning, critical) == (pair.warning, pair.critical):
        return pair
    return Thresholds(warning, critical)


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
