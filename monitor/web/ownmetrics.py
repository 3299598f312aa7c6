"""The monitor's own series (its health, not the agents'), through prometheus-client."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config.holder import ConfigHolder
from monitor.fleet import CAUSES, workspace_health
from monitor.model import Health
from monitor.revision import revision
from monitor.store import Store


class MonitorCollector(Collector):
    """The monitor's own health, read from `Health` and the store at scrape time."""

    def __init__(self, store: Store, health: Health, settings: ConfigHolder) -> None:
        self._store = store
        self._health = health
        self._settings = settings
        # Looked up once, at start-up, never during a scrape.
        self._revision = revision()

    def collect(self) -> Iterator[Metric]:
        health = self._health
        yield GaugeMetricFamily(
            "elevenlabs_link_monitor_agents", "Agents being watched.", value=len(self._store)
        )
        if health.last_cycle is not None:
            yield GaugeMetricFamily(
                "elevenlabs_link_monitor_last_cycle_timestamp_seconds",
                "Unix time the last full poll cycle finished.",
                value=health.last_cycle,
            )
        if health.last_cycle_duration is not None:
            yield GaugeMetricFamily(
                "elevenlabs_link_monitor_last_cycle_duration_seconds",
                "How long the last poll cycle took, whether every poll ended or it was cut short "
                "at its deadline (then about 90% of poll.interval).",
                value=health.last_cycle_duration,
            )
        yield CounterMetricFamily(
            "elevenlabs_link_monitor_cycles_overrun",
            "Poll cycles cut short because they could not finish before the next one.",
            value=health.cycles_overrun,
        )
        events = CounterMetricFamily(
            "elevenlabs_link_monitor_scheduler_events",
            "Scheduler trouble: jobs missed, skipped while still running, or failed.",
            labels=["event"],
        )
        for event, count in sorted(health.scheduler_events.items()):
            events.add_metric([event], count)
        yield events
        discovered = GaugeMetricFamily(
            "elevenlabs_link_monitor_discovered_agents",
            "Agents found by the last successful discovery, by workspace.",
            labels=["workspace"],
        )
        for workspace, count in sorted(health.discovered.items()):
            discovered.add_metric([workspace], count)
        yield discovered
        discovery_errors = CounterMetricFamily(
            "elevenlabs_link_monitor_discovery_errors",
            "Failed agent listings by workspace and reason.",
            labels=["workspace", "reason"],
        )
        for (workspace, reason), count in sorted(health.discovery_errors.items()):
            discovery_errors.add_metric([workspace, reason], count)
        yield discovery_errors
        discovery_success = GaugeMetricFamily(
            "elevenlabs_link_monitor_discovery_last_success_timestamp_seconds",
            "Unix time of the last successful agent listing, by workspace.",
            labels=["workspace"],
        )
        for workspace, at in sorted(health.discovery_last_success.items()):
            discovery_success.add_metric([workspace], at)
        yield discovery_success
        yield from self._workspaces()
        yield from self._intervals()
        yield GaugeMetricFamily(
            "elevenlabs_link_monitor_config_last_reload_successful",
            "1 when the last config (re)load worked.",
            value=1.0 if health.config_reload_ok else 0.0,
        )
        if health.config_reload_at is not None:
            yield GaugeMetricFamily(
                "elevenlabs_link_monitor_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config (re)load.",
                value=health.config_reload_at,
            )
        info = GaugeMetricFamily(
            "elevenlabs_link_monitor_build_info",
            "Always 1; the version and the source revision are labels.",
            labels=["version", "revision"],
        )
        info.add_metric([__version__, self._revision], 1.0)
        yield info

    def _workspaces(self) -> Iterator[Metric]:
        names = [w.name for w in self._settings.current.workspaces]
        verdicts = workspace_health(self._store.snapshot(), names, self._health.discovery_failing)
        failing = GaugeMetricFamily(
            "elevenlabs_link_monitor_workspace_failing",
            "1 for the cause while the workspace's polls fail as a whole (at least 90% of its "
            "polled agents' last polls failed, or its listing fails before any agent was "
            "polled; agents_not_found: at least 90% of them, two at least, answered 404); "
            "every cause 0 otherwise.",
            labels=["workspace", "reason"],
        )
        agents = GaugeMetricFamily(
            "elevenlabs_link_monitor_workspace_agents_failing",
            "Agents of the workspace whose last poll failed (a 404 is an answer, not counted).",
            labels=["workspace"],
        )
        for workspace in sorted(verdicts):
            verdict = verdicts[workspace]
            for cause in CAUSES:
                failing.add_metric([workspace, cause], 1.0 if verdict.cause == cause else 0.0)
            agents.add_metric([workspace], verdict.failing)
        yield failing
        yield agents

    def _intervals(self) -> Iterator[Metric]:
        # The rules' staleness alerts count in intervals: exported, they follow the config.
        poll = self._settings.current.config.poll
        yield GaugeMetricFamily(
            "elevenlabs_link_monitor_poll_interval_seconds",
            "The configured poll.interval.",
            value=poll.interval,
        )
        yield GaugeMetricFamily(
            "elevenlabs_link_monitor_discovery_interval_seconds",
            "The configured poll.discovery_interval.",
            value=poll.discovery_interval,
        )
