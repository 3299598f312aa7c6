// The mixin's settings. Override any of them with `_config+:: { ... }` (see README.md):
//
//   (import 'elevenlabs-link-monitor-mixin/mixin.libsonnet') + {
//     _config+:: { selector: 'job="link-monitor"', ownerLabels: ['team', 'env'] },
//   }
{
  _config+:: {
    // The label matchers of the monitor's scrape, without braces: every raw series the
    // rules read is selected with them (recorded series are derived from those). The
    // Helm chart's ServiceMonitor and deploy/prometheus/scrape-config.yml set this job.
    selector: 'job="elevenlabs-link-monitor"',

    // The labels that tell two monitors apart. Every aggregation and every vector match
    // keeps them, so two monitors in two namespaces (same job, same workspace and agent
    // names) never merge their alerts. A scrape without a namespace label simply gives an
    // empty `namespace`, absent from the alerts' labels. Add `cluster` for a
    // multi-cluster Prometheus (Thanos, Mimir).
    identityLabels: ['job', 'namespace'],

    // The owner labels every per-agent alert carries, joined from elevenlabs_agent_info (an
    // agent's `labels:` in the monitor's config, or discover.labels_from_tags), so that
    // Alertmanager routes on them. Prometheus label names, none of the monitor's own
    // (workspace, agent_id, agent_name, job, instance, namespace, state, reason) nor the
    // alerts' (alertname, alertstate, severity); [] for none.
    ownerLabels: ['team'],

    // Each alert's runbook_url: %s is the anchor of the alert's section (its name in lower
    // case, as GitHub makes anchors of headings).
    runbookURLPattern: 'https://github.com/elevenlabs-link-monitor/elevenlabs-link-monitor/blob/main/docs/runbook.md#%s',

    // How long the rules stand in for a monitor that is away (a restart): the last known
    // expiry, thresholds, owner labels and states of the past window.
    lastKnownWindow: '15m',

    // The expiry thresholds (seconds before expiry) that stand in for a monitor older than
    // 0.2, which exports no elevenlabs_agent_link_threshold_seconds: the monitor's default
    // `thresholds:` (7d and 1d). The Helm chart sets them from its `thresholds` values.
    fallbackThresholds: { warning: 7 * 86400, critical: 86400 },

    // ElevenLabsAgentLinkMissing fires for a link missing for at least this share of the
    // window (a link missing on every other poll is missing half the time).
    missingLinkRatio: 0.4,
    missingLinkWindow: '30m',

    // The staleness alerts fire after this many configured intervals without a full poll
    // cycle (elevenlabs_link_monitor_poll_interval_seconds) or a successful listing
    // (elevenlabs_link_monitor_discovery_interval_seconds).
    staleIntervals: 3,
    // The discovery interval of a monitor that exports none (older than 0.5): the default
    // poll.discovery_interval, 15 minutes.
    discoveryIntervalFallbackSeconds: 900,

    // Expiry alerts weighted by use: an agent last called within activeWindow, or whose use
    // nobody knows (its workspace's listing fails or leaves it out), alerts at the severity
    // below; one not called within it, or never called, alerts with idleSeverity (a ticket,
    // not a page). Digits with one unit (s, m, h, d, w). The monitor's usage.active_window
    // (its status page's ?idle=1) should agree: the Helm chart sets both from usage.active_window.
    activeWindow: '7d',
    idleSeverity: 'info',

    // Every alert's `for:` and severity (of the weighted ones: for a used agent, or unknown use).
    alerts: {
      ElevenLabsAgentLinkExpiringSoon: { 'for': '15m', severity: 'warning' },
      ElevenLabsAgentLinkExpiryCritical: { 'for': '5m', severity: 'critical' },
      ElevenLabsAgentLinkExpired: { 'for': '5m', severity: 'critical' },
      // At least the lastKnownWindow, so that a link fixed shortly before a restart cannot
      // re-fire from the fallback alone.
      ElevenLabsAgentLinkMissing: { 'for': '15m', severity: 'critical' },
      ElevenLabsAgentNotFound: { 'for': '15m', severity: 'critical' },
      ElevenLabsAgentLinkPollingFailing: { 'for': '30m', severity: 'warning' },
      // At least the lastKnownWindow, as ElevenLabsAgentLinkMissing.
      ElevenLabsAgentArchivedLinkLive: { 'for': '15m', severity: 'warning' },
      ElevenLabsWorkspaceKeyRejected: { 'for': '10m', severity: 'critical' },
      // Shorter than ElevenLabsAgentNotFound's by more than a poll interval, for the same
      // reason as ElevenLabsWorkspacePollingFailing's below.
      ElevenLabsWorkspaceAgentsNotFound: { 'for': '5m', severity: 'critical' },
      ElevenLabsWorkspaceApiUnreachable: { 'for': '15m', severity: 'warning' },
      // Shorter than ElevenLabsAgentLinkPollingFailing's by more than a poll interval: an
      // agent's own failure starts up to one interval before its workspace counts as failing
      // as a whole, and the workspace alert must fire (and hold the agents' back) first.
      ElevenLabsWorkspacePollingFailing: { 'for': '20m', severity: 'warning' },
      ElevenLabsLinkMonitorDown: { 'for': '10m', severity: 'critical' },
      ElevenLabsLinkMonitorAbsent: { 'for': '15m', severity: 'critical' },
      ElevenLabsLinkMonitorConfigReloadFailed: { 'for': '5m', severity: 'warning' },
      ElevenLabsLinkMonitorCyclesIncomplete: { 'for': '30m', severity: 'warning' },
      ElevenLabsLinkMonitorCyclesStale: { 'for': '5m', severity: 'warning' },
      ElevenLabsLinkMonitorDiscoveryFailing: { 'for': '5m', severity: 'warning' },
    },
  },
}
