"""Prometheus exposition: a collector that builds every series from the store at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.api import Reason
from monitor.evaluate import STATES, Kind, Thresholds, evaluate
from monitor.store import AgentRecord, Store

AGENT_LABELS = ["workspace", "agent_id", "agent_name"]

# Requests to the API take 50 ms to a few seconds; timeouts are 10 s by default.
POLL_DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Health:
    """The monitor's own figures, written by the scheduler, read at scrape time."""

    last_cycle: float | None = None
    last_cycle_duration: float | None = None
    config_reload_ok: bool = True
    config_reload_at: float | None = None
    cycles_overrun: int = 0
    scheduler_events: dict[str, int] = field(default_factory=dict)
    discovered: dict[str, int] = field(default_factory=dict)
    discovery_errors: dict[tuple[str, str], int] = field(default_factory=dict)


class LinkCollector(Collector):
    def __init__(
        self,
        store: Store,
        thresholds: Callable[[], Thresholds],
        health: Health,
        clock: Callable[[], float],
        expose_relative: Callable[[], bool],
    ) -> None:
        self._store = store
        self._thresholds = thresholds
        self._health = health
        self._clock = clock
        self._expose_relative = expose_relative

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        thresholds = self._thresholds()
        relative = self._expose_relative()
        expiry = GaugeMetricFamily(
            "elevenlabs_agent_link_expiry_timestamp_seconds",
            "Unix time the agent link's token expires; absent without a token or an expiry.",
            labels=AGENT_LABELS,
        )
        expires_in = GaugeMetricFamily(
            "elevenlabs_agent_link_expires_in_seconds",
            "Seconds until the agent link's token expires (negative once expired).",
            labels=AGENT_LABELS,
        )
        missing = GaugeMetricFamily(
            "elevenlabs_agent_link_token_missing",
            "1 when the last successful poll said the agent has no link token.",
            labels=AGENT_LABELS,
        )
        state = GaugeMetricFamily(
            "elevenlabs_agent_link_state",
            "1 for the agent link's current state, 0 for the others.",
            labels=[*AGENT_LABELS, "state"],
        )
        success = GaugeMetricFamily(
            "elevenlabs_agent_link_poll_success",
            "1 when the last poll got a valid answer.",
            labels=AGENT_LABELS,
        )
        last_success = GaugeMetricFamily(
            "elevenlabs_agent_link_last_success_timestamp_seconds",
            "Unix time of the last valid answer.",
            labels=AGENT_LABELS,
        )
        errors = CounterMetricFamily(
            "elevenlabs_agent_link_poll_errors",
            "Failed polls by reason.",
            labels=[*AGENT_LABELS, "reason"],
        )
        rotations = CounterMetricFamily(
            "elevenlabs_agent_link_token_rotations",
            "Times the token or its expiry changed between successful polls.",
            labels=AGENT_LABELS,
        )
        records = self._store.snapshot()
        for record in records:
            labels = [record.key.workspace, record.key.agent_id, record.name]
            observation = record.observation
            if observation is not None and observation.expires_at is not None:
                expiry.add_metric(labels, observation.expires_at)
                if relative:
                    expires_in.add_metric(labels, observation.expires_at - now)
            missing.add_metric(labels, 1.0 if _said_missing(record) else 0.0)
            current = evaluate(observation, now, thresholds)
            for name in STATES:
                state.add_metric([*labels, name.value], 1.0 if name is current else 0.0)
            success.add_metric(labels, 1.0 if record.poll_success else 0.0)
            if record.last_success is not None:
                last_success.add_metric(labels, record.last_success)
            for reason in Reason:
                errors.add_metric([*labels, reason.value], record.errors[reason])
            rotations.add_metric(labels, record.rotations)
        yield expiry
        if relative:
            yield expires_in
        yield from (missing, state, success, last_success, errors, rotations)
        yield from self._own(len(records))

    def _own(self, agents: int) -> Iterator[Metric]:
        health = self._health
        yield GaugeMetricFamily(
            "elevenlabs_link_monitor_agents", "Agents being watched.", value=agents
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
                "How long the last full poll cycle took.",
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
            "Always 1; the version is a label.",
            labels=["version"],
        )
        info.add_metric([__version__], 1.0)
        yield info


def _said_missing(record: AgentRecord) -> bool:
    return record.observation is not None and record.observation.kind is Kind.MISSING


def build_registry(collector: LinkCollector) -> tuple[CollectorRegistry, Histogram]:
    """A registry of our own: no default collectors beyond the process's."""
    # `_created` series double every counter for no use to an alert rule.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    ProcessCollector(registry=registry)
    duration = Histogram(
        "elevenlabs_link_monitor_poll_duration_seconds",
        "One API request's duration.",
        buckets=POLL_DURATION_BUCKETS,
        registry=registry,
    )
    return registry, duration
