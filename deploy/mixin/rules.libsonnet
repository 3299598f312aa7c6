// The recording rules the per-agent alerts read (prometheusRules).
//
// Per-agent series are aggregated to the identity labels (job, namespace) plus workspace and
// agent_id, so that a new pod or instance address after a restart keeps the same alert
// identity. The agent's name is not part of it: a rename in ElevenLabs must neither resolve
// nor restart an alert (the annotations look the name up in elevenlabs_agent_info).
//
// A restart makes the per-agent series vanish, then report state "unknown" until the first
// poll: for up to lastKnownWindow (15 minutes) the rules fall back to the last known value,
// so a restart neither resolves nor re-fires an alert. The price: an agent removed from the
// config may keep alerting for up to 15 minutes.
local lib = import 'lib.libsonnet';

{
  // The recorded series' names, for the alerts.
  _records:: {
    expiry: 'elevenlabs_agent:link_expiry_timestamp_seconds:last_known',
    threshold: 'elevenlabs_agent:link_threshold_seconds:last_known',
    owner: 'elevenlabs_agent:owner_labels:last_known',
    idle: 'elevenlabs_agent:idle:last_known',
    archived: 'elevenlabs_agent:archived:last_known',
  },

  // 1 for an idle agent (never called, or last called before the activeWindow), 0 for a used
  // one, absent where nobody knows (no usage series: its workspace's listing fails or leaves
  // it out). The weighted alerts page for 0 and absent alike, and alert with idleSeverity for
  // 1. While the current series are absent (a restart: they come back only with the
  // restarted monitor's first listing, which may follow its first polls), the values seen in
  // the lastKnownWindow stand in, so that an idle agent's alert neither turns into a page nor
  // restarts its for: across a restart. Unlike _lastKnown, the fallback is not cut short by a
  // known link state: usage and link states come from different requests. The price: an
  // agent whose usage becomes unknown keeps its last weight for up to 15 minutes.
  _idle(c)::
    local K = lib.agents(c);
    local W = lib.seconds(c.activeWindow);
    local nc = lib.metric(c, 'elevenlabs_agent_never_called');
    local lc = lib.metric(c, 'elevenlabs_agent_last_call_timestamp_seconds');
    |||
      (
        max by (%(K)s) (%(nc)s) == 1
        or
        time() - max by (%(K)s) (%(lc)s) > bool %(W)s
      )
      or
      (
        max by (%(K)s) (last_over_time(%(nc)s[%(w)s])) == 1
        or
        time() - max by (%(K)s) (last_over_time(%(lc)s[%(w)s])) > bool %(W)s
      )
    ||| % { K: K, W: W, nc: nc, lc: lc, w: c.lastKnownWindow },

  // 1 for an archived agent, 0 for a live one, absent until a listing says; while absent (a
  // restart), the value seen in the lastKnownWindow, so that an archived agent's expiry
  // alerts, read from the last known expiry meanwhile, stay held back.
  _archived(c)::
    local K = lib.agents(c);
    local a = lib.metric(c, 'elevenlabs_agent_archived');
    |||
      max by (%(K)s) (%(a)s)
      or
      max by (%(K)s) (last_over_time(%(a)s[%(w)s]))
    ||| % { K: K, a: a, w: c.lastKnownWindow },

  // The current value of a per-agent series or, while the monitor has no known state for the
  // agent (restarting, series absent, state "unknown"), the last value seen in the window.
  // `by` may add labels (level) to the agent's keys.
  _lastKnown(c, name, extra='', by=[]):: |||
    max by (%(by)s) (%(now)s)
    or
    (
      max by (%(by)s) (last_over_time(%(now)s[%(window)s]))
      unless on (%(agents)s)
      (%(known)s == 1)
    )
  ||| % {
    by: lib.list(lib.agentKeys(c) + by),
    now: lib.metric(c, name, extra),
    window: c.lastKnownWindow,
    agents: lib.agents(c),
    known: lib.metric(c, 'elevenlabs_agent_link_state', 'state!="unknown"'),
  },

  // The default threshold of `level` for every agent with a known expiry (a monitor older
  // than 0.2 exports none).
  _fallbackThreshold(c, level, expiry)::
    'label_replace(%s * 0 + %s, "level", "%s", "", "")' % [expiry, std.toString(c.fallbackThresholds[level]), level],

  // Each agent's owner labels, value 1, exactly one series per agent, for the alerts to join
  // with `* on (<agent keys>) group_left (<owner labels>)`. Read from elevenlabs_agent_info
  // without agent_name, so that a rename (old and new name side by side in the window) is
  // still one series: the current info or, while the monitor is away (a restart), the info
  // seen in the window. Should two teams meet (a change of team shortly before a restart),
  // the one seen last wins: topk on the time of its last sample (a 1m subquery; a team seen
  // only within its last step ranks 0), so the join never fails with a many-to-one error and
  // never goes back to the old team. Every other agent seen in the window (no info series: a
  // monitor older than 0.2) gets a series without owner labels, so that it still alerts.
  _ownerLabels(c):: |||
    group by (%(owners)s) (
      topk by (%(agents)s) (1,
        max by (%(owners)s) (timestamp(%(info)s))
        or on (%(agents)s)
        (
          max by (%(owners)s) (max_over_time(timestamp(%(info)s)[%(window)s:1m]))
          and
          group by (%(owners)s) (last_over_time(%(info)s[%(window)s]))
          or
          group by (%(owners)s) (last_over_time(%(info)s[%(window)s])) * 0
        )
      )
    )
    or on (%(agents)s)
    group by (%(agents)s) (last_over_time(%(unknown)s[%(window)s]))
  ||| % {
    owners: lib.owners(c),
    agents: lib.agents(c),
    info: lib.metric(c, 'elevenlabs_agent_info'),
    window: c.lastKnownWindow,
    unknown: lib.metric(c, 'elevenlabs_agent_link_state', 'state="unknown"'),
  },

  prometheusRules+:: {
    local c = $._config,
    groups+: [
      {
        name: 'elevenlabs-link-monitor.rules',
        rules: [
          // The link's expiry, last known.
          {
            record: $._records.expiry,
            expr: $._lastKnown(c, 'elevenlabs_agent_link_expiry_timestamp_seconds'),
          },
          // Each agent's thresholds (level="warning" and level="critical", in seconds
          // before expiry), with the same fallback as the expiry. Where the monitor exports
          // none (older than 0.2), fallbackThresholds stand in, for every agent with a known
          // expiry. Only the chart changes these two numbers (its `thresholds`, the same
          // ones its monitor's config gets).
          {
            record: $._records.threshold,
            expr: $._lastKnown(c, 'elevenlabs_agent_link_threshold_seconds', by=['level'])
                  + 'or\n' + $._fallbackThreshold(c, 'warning', $._records.expiry)
                  + '\nor\n' + $._fallbackThreshold(c, 'critical', $._records.expiry) + '\n',
          },
          {
            record: $._records.owner,
            expr: $._ownerLabels(c),
          },
          {
            record: $._records.idle,
            expr: $._idle(c),
          },
          {
            record: $._records.archived,
            expr: $._archived(c),
          },
        ],
      },
    ],
  },
}
