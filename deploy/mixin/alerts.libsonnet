// The alerts (prometheusAlerts), each beside its Grafana-managed twin (grafanaManagedAlerts,
// hidden: deploy/grafana/generate_dashboard.py builds Grafana's provisioning file from it).
// One definition per alert: its name, `for:`, severity, runbook and wording are shared; the
// twin's query inlines the recording rules (Grafana has none) and returns a value for every
// agent (0 when fine) rather than only the alerting ones.
local lib = import 'lib.libsonnet';

// std.rstripChars and std.findSubstr work a character at a time in Jsonnet's own code: on the
// Grafana twins' long queries they took tens of seconds a render. Indexing and std.substr are
// built in.
local strip(s) = if std.length(s) > 0 && s[std.length(s) - 1] == '\n' then strip(std.substr(s, 0, std.length(s) - 1)) else s;
local indent(s) = '  ' + std.strReplace(strip(s), '\n', '\n  ');

{
  // How each side says the agent's name, the alert's value and the agent's threshold.
  _prometheusText(c):: {
    // The current name or, while the monitor is away (a restart), the one seen in the
    // lastKnownWindow, as the rules' own fallback does; never an alert label, so that a
    // rename neither resolves nor restarts an alert.
    name: '{{ $info := %s }}{{ with printf `%%s or (last_over_time(%%s[%s]) unless on (%s) %%s)` $info $info $info | query }}{{ . | first | label `agent_name` }}{{ end }} ' % [
      lib.agentMatchers(c, 'elevenlabs_agent_info'),
      c.lastKnownWindow,
      lib.agents(c),
    ],
    value: '{{ $value | humanizeDuration }}',
    threshold(level): '{{ with %s | query }}{{ . | first | value | humanizeDuration | reReplaceAll `( 0[hms])+$` `` }}{{ end }}' % [
      lib.agentMatchers(c, $._records.threshold, "level='%s'" % level, selected=false),
    ],
  },
  // Grafana: query N names the agent, B is the reduced value of A, T the agent's threshold.
  _grafanaText(c):: {
    name: '{{ with $values.N }}{{ .Labels.agent_name }} {{ end }}',
    value: '{{ humanizeDuration $values.B.Value }}',
    threshold(level): '{{ with $values.T }}{{ humanizeDuration .Value | reReplaceAll `( 0[hms])+$` `` }}{{ end }}',
  },

  // --- the Grafana twins' building blocks: the recording rules, inlined -------------------
  local grafana(c) = {
    local K = lib.agents(c),
    local S(name, extra='') = lib.metric(c, name, extra),
    local known = S('elevenlabs_agent_link_state', 'state!="unknown"'),
    local w = c.lastKnownWindow,
    local expiry = strip(|||
      max by (%(K)s) (%(m)s)
      or
      max by (%(K)s) (last_over_time(%(m)s[%(w)s]))
        unless on (%(K)s) (%(known)s == 1)
    ||| % { K: K, m: S('elevenlabs_agent_link_expiry_timestamp_seconds'), w: w, known: known }),
    expiry: expiry,
    threshold(level): strip(|||
      max by (%(K)s) (%(m)s)
      or
      max by (%(K)s) (last_over_time(%(m)s[%(w)s]))
        unless on (%(K)s) (%(known)s == 1)
      or
      (
      %(expiry)s
      ) * 0 + %(default)s
    ||| % {
      K: K,
      m: S('elevenlabs_agent_link_threshold_seconds', 'level="%s"' % level),
      w: w,
      known: known,
      expiry: expiry,
      default: std.toString(c.fallbackThresholds[level]),
    }),
    // Each agent's current name or, in the window, its last one; with the owner labels, so
    // that its labels hold those of the alert (Grafana matches N to an alert by one label set
    // including the other). An agent without an info series (a monitor older than 0.2) gets
    // a nameless series: were N empty, Grafana would take the whole rule for NoData.
    names: strip(|||
      max by (%(K)s, agent_name%(owners)s) (%(info)s or (last_over_time(%(info)s[%(w)s]) unless on (%(K)s) %(info)s))
      or on (%(K)s)
      group by (%(K)s) (last_over_time(%(unknown)s[%(w)s]))
    ||| % {
      K: K,
      owners: std.join('', [', ' + l for l in c.ownerLabels]),
      info: S('elevenlabs_agent_info'),
      w: w,
      unknown: S('elevenlabs_agent_link_state', 'state="unknown"'),
    }),
    // The recording rules' usage and archive verdicts, inlined (the same expressions).
    idle: strip($._idle(c)),
    archived: strip($._archived(c)),
    // 1 while the agent's link is live (ok, warning or critical: a token, expiring or not),
    // else 0, with the same fallback as state(); a series per agent.
    live: strip(|||
      max by (%(K)s) (%(m)s)
        unless on (%(K)s) (%(unknown)s == 1)
      or
      max by (%(K)s) (max_over_time(%(m)s[%(w)s]))
    ||| % {
      K: K,
      m: S('elevenlabs_agent_link_state', 'state=~"ok|warning|critical"'),
      unknown: S('elevenlabs_agent_link_state', 'state="unknown"'),
      w: w,
    }),
    // A per-agent expression with the agent's owner labels joined in (its value kept).
    owned(expr): '(\n%s\n)\n* on (%s) group_left (%s)\n(\n%s\n)' % [strip(expr), K, lib.ownerJoin(c), strip($._ownerLabels(c))],
    // Seconds left where under `upper` (and at least `lower`, or above 0), else 0, for every
    // agent with a known expiry: out of range is Normal, not missing.
    within(upper, lower):
      local floor = if lower == null then '> 0' else '>= on (%s) (\n%s\n)' % [K, lower];
      '(\n(\n%s\n) - time()\n< on (%s) (\n%s\n)\n%s\n)\nor on (%s)\n(\n%s\n) * 0' % [expiry, K, upper, floor, K, expiry],
    // 1 while the agent is in `state`, else 0, with the same fallback; a series per agent.
    state(state): strip(|||
      max by (%(K)s) (%(m)s)
        unless on (%(K)s) (%(unknown)s == 1)
      or
      max by (%(K)s) (max_over_time(%(m)s[%(w)s]))
    ||| % {
      K: K,
      m: S('elevenlabs_agent_link_state', 'state="%s"' % state),
      unknown: S('elevenlabs_agent_link_state', 'state="unknown"'),
      w: w,
    }),
  },

  // --- the alerts ---------------------------------------------------------------------------
  _alertDefinitions(c)::
    local K = lib.agents(c);
    local WS = lib.workspaces(c);
    local I = lib.instances(c);
    local S(name, extra='') = lib.metric(c, name, extra);
    local g = grafana(c);
    local r = $._records;
    local forWords(alert) = lib.words(c.alerts[alert]['for']);
    // The whole condition, then the owner labels' join: the alert's value stays the
    // condition's. An agent without owner labels alerts without them; a change of team is a
    // new alert (the old one resolves), a rename is not.
    local owned(cond) = '(\n%s\n)\n* on (%s) group_left (%s)\n%s\n' % [indent(cond), K, lib.ownerJoin(c), r.owner];
    // Archived agents raise none of the per-agent alerts but ElevenLabsAgentArchivedLinkLive:
    // nobody should renew, recreate or poll-fix the links of an agent taken out of service.
    local live(cond, archived=r.archived) = '(\n%s\n)\nunless on (%s)\n(%s == 1)' % [indent(cond), K, archived];
    // Weighted by use: the severity is a label of the expression rather than of the rule.
    // Two rules of one name (one per severity) would do as much in Prometheus, but twice
    // every weighted rule in rules.yml, the chart and Grafana (where a title is unique in its
    // folder), and two for: clocks to keep in step. Here `unless` and `and` on the same
    // (idle == 1) split the condition's series in two, so every series alerts at exactly one
    // severity: today's for a used agent and for unknown use (no idle series; never hidden
    // for want of data), idleSeverity for an idle one. A change of weight (an idle agent
    // called again) is a new alert, as a change of team is; a rename is not.
    local weigh(alert, cond, idle) = |||
      label_replace(
      %(cond)s
        unless on (%(K)s)
        (%(idle)s == 1),
        "severity", "%(severity)s", "", ""
      )
      or
      label_replace(
      %(cond)s
        and on (%(K)s)
        (%(idle)s == 1),
        "severity", "%(idleSeverity)s", "", ""
      )
    ||| % {
      cond: indent('(\n%s\n)' % indent(cond)),
      K: K,
      idle: idle,
      severity: c.alerts[alert].severity,
      idleSeverity: c.idleSeverity,
    };
    // A weighted alert's expression: archived agents left out, the severity by use, the
    // owner labels joined.
    local weighted(alert, cond) = owned(weigh(alert, live(cond), r.idle));
    // Its Grafana twin's, with the recording rules inlined; its N (names) carries the same
    // severity, so that Grafana matches N to the alert (one label set including the other).
    local grafanaWeighted(alert, expr) = g.owned(weigh(alert, live(expr, '(\n%s\n)' % g.archived), '(\n%s\n)' % g.idle));
    local grafanaNames(alert) = strip(weigh(alert, g.names, '(\n%s\n)' % g.idle));
    local agent(t) = 'agent %s({{ $labels.agent_id }}) in workspace {{ $labels.workspace }}' % t.name;
    local agentLong(t) = 'agent %s(id {{ $labels.agent_id }}, workspace {{ $labels.workspace }})' % t.name;
    local workspaceFailing(reasons) = 'max by (%s) (%s)' % [WS, S('elevenlabs_link_monitor_workspace_failing', reasons)];
    // The monitor's age without a full poll cycle: since the last one or, before the first,
    // since the process started.
    local cycleAge = strip(|||
      time() - (
        max by (%(I)s) (%(cycle)s)
        or on (%(I)s)
        max by (%(I)s) (%(start)s)
      )
    ||| % { I: I, cycle: S('elevenlabs_link_monitor_last_cycle_timestamp_seconds'), start: S('process_start_time_seconds') });
    local cycleLimit = '%d * max by (%s) (%s)' % [c.staleIntervals, I, S('elevenlabs_link_monitor_poll_interval_seconds')];
    // The time without a successful listing of a discovering workspace: since the last one
    // or, when none succeeded, since the monitor started (failed listings say the workspace
    // discovers).
    local discoveryAge = strip(|||
      time() - (
        %(success)s
        or on (%(I)s, workspace)
        (
          max without (reason) (%(errors)s) * 0
          + on (%(I)s) group_left ()
          %(start)s
        )
      )
    ||| % {
      I: I,
      success: S('elevenlabs_link_monitor_discovery_last_success_timestamp_seconds'),
      errors: S('elevenlabs_link_monitor_discovery_errors_total'),
      start: S('process_start_time_seconds'),
    });
    // staleIntervals discovery intervals, as the monitor exports its poll.discovery_interval;
    // a monitor that exports none (older) is taken to list every discoveryIntervalFallbackSeconds.
    local discoveryLimit = strip(|||
      %(n)d * (
        max by (%(I)s) (%(interval)s)
        or on (%(I)s)
        max by (%(I)s) (%(start)s) * 0 + %(fallback)d
      )
    ||| % {
      n: c.staleIntervals,
      I: I,
      interval: S('elevenlabs_link_monitor_discovery_interval_seconds'),
      start: S('process_start_time_seconds'),
      fallback: c.discoveryIntervalFallbackSeconds,
    });
    local notFound = S('elevenlabs_agent_link_state', 'state="not_found"');
    // A workspace alert's condition has held for that alert's whole `for:` (so the alert
    // fires): only then are the workspace's per-agent poll alerts held back. Held back while
    // the workspace merely fails as a whole now, a workspace flapping around the 90% line
    // would reset both the per-agent alerts' `for:` and its own alert's: neither would ever
    // fire, and the monitor would be blind without a word. Each reason's series must hold
    // on its own (a change of reason starts the workspace alert anew: the per-agent alerts
    // go on meanwhile, noisy rather than silent).
    local workspaceHeld(reasons, alert) = 'max by (%s) (min_over_time(%s[%s])) == 1' % [
      WS,
      S('elevenlabs_link_monitor_workspace_failing', reasons),
      c.alerts[alert]['for'],
    ];
    local workspaceNotFoundHeld = workspaceHeld('reason="agents_not_found"', 'ElevenLabsWorkspaceAgentsNotFound');
    local workspaceFailingAtAll = '(\n  %s\n  or on (%s)\n  %s\n  or on (%s)\n  %s\n)' % [
      workspaceHeld('reason="unauthorized"', 'ElevenLabsWorkspaceKeyRejected'),
      WS,
      workspaceHeld('reason="unreachable"', 'ElevenLabsWorkspaceApiUnreachable'),
      WS,
      workspaceHeld('reason=~"rate_limited|api_error"', 'ElevenLabsWorkspacePollingFailing'),
    ];
    [
      {
        alert: 'ElevenLabsAgentLinkExpiringSoon',
        // The seconds left, where they are below the agent's warning threshold and at least
        // its critical one (a chained comparison keeps the left value).
        weighted: true,
        expr: weighted('ElevenLabsAgentLinkExpiringSoon', |||
          %(expiry)s - time()
          < on (%(K)s) %(threshold)s{level="warning"}
          >= on (%(K)s) %(threshold)s{level="critical"}
        ||| % { expiry: r.expiry, threshold: r.threshold, K: K }),
        summary(t): 'ElevenLabs %s: shareable link expires in %s' % [agent(t), t.value],
        description(t): 'The shareable link of %s expires within %s, in %s. Renew the link before it expires.' % [agentLong(t), t.threshold('warning'), t.value],
        grafana: {
          uid: 'ellm-link-expiring-soon',
          expr: grafanaWeighted('ElevenLabsAgentLinkExpiringSoon', g.within(g.threshold('warning'), g.threshold('critical'))),
          names: grafanaNames('ElevenLabsAgentLinkExpiringSoon'),
          threshold: g.threshold('warning'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsAgentLinkExpiryCritical',
        weighted: true,
        expr: weighted('ElevenLabsAgentLinkExpiryCritical', |||
          %(expiry)s - time()
          < on (%(K)s) %(threshold)s{level="critical"}
          > 0
        ||| % { expiry: r.expiry, threshold: r.threshold, K: K }),
        summary(t): 'ElevenLabs %s: shareable link expires in %s' % [agent(t), t.value],
        description(t): 'The shareable link of %s expires within %s, in %s. Renew it now: callers will soon be unable to reach the agent.' % [agentLong(t), t.threshold('critical'), t.value],
        grafana: {
          uid: 'ellm-link-expiry-critical',
          expr: grafanaWeighted('ElevenLabsAgentLinkExpiryCritical', g.within(g.threshold('critical'), null)),
          names: grafanaNames('ElevenLabsAgentLinkExpiryCritical'),
          threshold: g.threshold('critical'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsAgentLinkExpired',
        weighted: true,
        expr: weighted('ElevenLabsAgentLinkExpired', 'time() - %s >= 0' % r.expiry),
        summary(t): 'ElevenLabs %s: shareable link expired %s ago' % [agent(t), t.value],
        description(t): 'The shareable link of %s expired %s ago. Callers using the link cannot reach the agent; create a new link.' % [agentLong(t), t.value],
        grafana: {
          uid: 'ellm-link-expired',
          expr: grafanaWeighted('ElevenLabsAgentLinkExpired', 'time() - (\n%s\n)' % g.expiry),
          names: grafanaNames('ElevenLabsAgentLinkExpired'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsAgentLinkMissing',
        // Missing now (or, while the monitor has no known state, in the lastKnownWindow), or
        // missing for at least missingLinkRatio (40%) of the missingLinkWindow (30 minutes):
        // a link missing on every other poll is missing half the time, and each good poll in
        // between would otherwise restart the for: clock, so it would never fire. One
        // missing 5-minute poll is 1/6 of the window and does not fire; a steady missing link
        // fires after 15 minutes. The price: a fixed link resolves only once it was missing
        // for less than 40% of the past 30 minutes, up to 18 minutes after the fix.
        weighted: true,
        expr: weighted('ElevenLabsAgentLinkMissing', |||
          max by (%(K)s) (%(missing)s == 1)
          or
          (
            max by (%(K)s) (max_over_time(%(missing)s[%(w)s])) == 1
            unless on (%(K)s)
            (%(known)s == 1)
          )
          or
          max by (%(K)s) (avg_over_time(%(missing)s[%(window)s])) >= %(ratio)s
        ||| % {
          K: K,
          missing: S('elevenlabs_agent_link_state', 'state="missing"'),
          known: S('elevenlabs_agent_link_state', 'state!="unknown"'),
          w: c.lastKnownWindow,
          window: c.missingLinkWindow,
          ratio: std.toString(c.missingLinkRatio),
        }),
        summary(t): 'ElevenLabs %s has no shareable link' % agent(t),
        description(t): 'The API answered token: null for %s: the agent has no shareable link. Create one in the ElevenLabs dashboard.' % agentLong(t),
        grafana: {
          uid: 'ellm-link-missing',
          // The flapping case first: `or` keeps the left side's value, and the last-known
          // state is 0 between two missing polls.
          expr: grafanaWeighted('ElevenLabsAgentLinkMissing', 'max by (%s) (avg_over_time(%s[%s])) >= %s\nor\n%s' % [
            K,
            S('elevenlabs_agent_link_state', 'state="missing"'),
            c.missingLinkWindow,
            std.toString(c.missingLinkRatio),
            g.state('missing'),
          ]),
          names: grafanaNames('ElevenLabsAgentLinkMissing'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsAgentNotFound',
        // Not weighted by use: a 404 means the agent was deleted or the config names a wrong
        // id or key, and the listing's last call goes with a deleted agent (its use turns
        // unknown, so weighing would give info for at most the lastKnownWindow, then today's
        // severity: a flip, not a weight). A deleted agent that was in use is the worst case,
        // callers on a dead link; a wrong id is a config error to fix either way.
        // Held back, as the poll-failure alerts are, while its whole workspace answers 404
        // (ElevenLabsWorkspaceAgentsNotFound: a key of another workspace).
        expr: owned(live(|||
          (
            max by (%(K)s) (%(notFound)s == 1)
            or
            (
              max by (%(K)s) (max_over_time(%(notFound)s[%(w)s])) == 1
              unless on (%(K)s)
              (%(known)s == 1)
            )
          )
          unless on (%(WS)s)
          %(held)s
        ||| % {
          K: K,
          WS: WS,
          notFound: notFound,
          known: S('elevenlabs_agent_link_state', 'state!="unknown"'),
          w: c.lastKnownWindow,
          held: workspaceNotFoundHeld,
        })),
        summary(t): 'ElevenLabs %s was not found' % agent(t),
        description(t): 'The API answers 404 for %s: it was deleted, or the id in the monitor\'s config is wrong, or the key belongs to another workspace.' % agentLong(t),
        grafana: {
          uid: 'ellm-agent-not-found',
          expr: g.owned(live('%s\n  unless on (%s) %s' % [g.state('not_found'), WS, workspaceNotFoundHeld], '(\n%s\n)' % g.archived)),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsAgentLinkPollingFailing',
        // Link alerts keep working from the last successful poll while the API is
        // unreachable, so only a sustained failure is worth a notification. While the agent's
        // whole workspace fails (a revoked key, an unreachable host: one of the workspace
        // alerts below), its agents' alerts are held back here, in the rule itself, so that
        // any Alertmanager gets one page, not one per agent.
        expr: owned(live(|||
          max by (%(K)s) (%(success)s) == 0
          unless on (%(K)s)
          (%(notFound)s == 1)
          unless on (%(WS)s)
          %(failing)s
        ||| % {
          K: K,
          WS: WS,
          success: S('elevenlabs_agent_link_poll_success'),
          notFound: notFound,
          failing: workspaceFailingAtAll,
        })),
        summary(t): 'elevenlabs-link-monitor cannot poll %s' % agent(t),
        description(t): 'Every poll of %s has failed for at least %s; its link state may be stale. elevenlabs_agent_link_poll_errors_total and the monitor\'s poll_failed log lines give the reason (unauthorized: rotate the key or grant convai_read).' % [agentLong(t), forWords('ElevenLabsAgentLinkPollingFailing')],
        grafana: {
          uid: 'ellm-polling-failing',
          expr: g.owned(live('max by (%s) (%s)\n  unless on (%s) (%s == 1)\n  unless on (%s) %s' % [
            K,
            S('elevenlabs_agent_link_poll_success'),
            K,
            notFound,
            WS,
            workspaceFailingAtAll,
          ], '(\n%s\n)' % g.archived)),
          evaluator: ['lt', 1],
        },
      },
      {
        alert: 'ElevenLabsAgentArchivedLinkLive',
        // An archived agent whose shareable link still carries a token (ok, warning or
        // critical: a token without expiry is a live door too) is a public door nobody
        // closed. The monitor polls archived agents' links at the discovery interval (its
        // exposure sweep); the link state and the archive verdict fall back to the
        // lastKnownWindow as the other alerts do, so a restart neither resolves nor re-fires
        // it. The value is 1.
        expr: owned(|||
          (
            max by (%(K)s) (%(live)s) == 1
            or
            (
              max by (%(K)s) (max_over_time(%(live)s[%(w)s])) == 1
              unless on (%(K)s)
              (%(known)s == 1)
            )
          )
          and on (%(K)s)
          (%(archived)s == 1)
        ||| % {
          K: K,
          live: S('elevenlabs_agent_link_state', 'state=~"ok|warning|critical"'),
          known: S('elevenlabs_agent_link_state', 'state!="unknown"'),
          w: c.lastKnownWindow,
          archived: r.archived,
        }),
        summary(t): 'ElevenLabs archived %s still has a live shareable link' % agent(t),
        description(t): 'The ElevenLabs %s is archived, but its shareable link still carries a token that has not expired: anyone holding the link can still reach the agent. Revoke the link in the ElevenLabs dashboard, or unarchive the agent if it is still meant to answer.' % agentLong(t),
        grafana: {
          uid: 'ellm-archived-link-live',
          // 1 where archived and live, else 0, for every agent with a link state.
          expr: g.owned('(\n%s\n)\nand on (%s)\n((\n%s\n) == 1)\nor on (%s)\n(\n%s\n) * 0' % [g.live, K, g.archived, K, g.live]),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsWorkspaceKeyRejected',
        // The API answers 401 to (at least 90% of) the workspace's polls: the key is revoked,
        // or lacks convai_read. It never heals by itself, and every link of the workspace goes
        // unwatched: critical.
        expr: '%s == 1\n' % workspaceFailing('reason="unauthorized"'),
        summary(t): 'The ElevenLabs API rejects the key of workspace {{ $labels.workspace }}',
        description(t): 'The ElevenLabs API has answered 401 unauthorized to the polls of workspace {{ $labels.workspace }} (job {{ $labels.job }}) for %s: its API key was revoked or rotated without updating the monitor, or lacks the convai_read scope. None of its links are being checked; the per-agent poll-failure alerts are held back while this one fires, and expiry alerts keep firing from the last known expiry. Rotate the key or grant convai_read.' % forWords('ElevenLabsWorkspaceKeyRejected'),
        grafana: {
          uid: 'ellm-workspace-key-rejected',
          expr: workspaceFailing('reason="unauthorized"'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsWorkspaceAgentsNotFound',
        // The API answers 404 for (at least 90% of, two at least) the workspace's agents: the
        // key belongs to another workspace, or the configured ids are wrong. It never heals
        // by itself, and none of the workspace's links is watched: critical, as a rejected key.
        expr: '%s == 1\n' % workspaceFailing('reason="agents_not_found"'),
        summary(t): 'The key of workspace {{ $labels.workspace }} sees none of its ElevenLabs agents',
        description(t): 'The ElevenLabs API has answered 404 (agent not found) for the agents of workspace {{ $labels.workspace }} (job {{ $labels.job }}) for %s: its API key most likely belongs to another ElevenLabs workspace, or the configured agent ids are wrong (or the agents were deleted). None of its links are being checked; the per-agent not-found alerts are held back while this one fires. Check the key against the workspace in the ElevenLabs dashboard.' % forWords('ElevenLabsWorkspaceAgentsNotFound'),
        grafana: {
          uid: 'ellm-workspace-agents-not-found',
          expr: workspaceFailing('reason="agents_not_found"'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsWorkspaceApiUnreachable',
        // The workspace's API host cannot be reached (DNS, connection, TLS, timeouts). A
        // warning, not a page: the cause is usually outside the team's hands (a provider or
        // network outage, a proxy) and passes by itself, and the expiry alerts keep firing
        // from the last known expiry meanwhile; a key rejection (above) is the one that never
        // heals alone. Raise its severity in _config.alerts for links that must never go
        // unwatched for long.
        expr: '%s == 1\n' % workspaceFailing('reason="unreachable"'),
        summary(t): 'elevenlabs-link-monitor cannot reach the ElevenLabs API of workspace {{ $labels.workspace }}',
        description(t): 'The polls of workspace {{ $labels.workspace }} (job {{ $labels.job }}) have failed to reach its API host for %s: DNS, connection, TLS or timeouts. New expiries, missing links and renewals go unseen; expiry alerts keep firing from the last known expiry. Check the workspace\'s base_url, the proxy and the network path, and the provider\'s status page.' % forWords('ElevenLabsWorkspaceApiUnreachable'),
        grafana: {
          uid: 'ellm-workspace-api-unreachable',
          expr: workspaceFailing('reason="unreachable"'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsWorkspacePollingFailing',
        // The API answers but refuses the workspace's polls: rate limited (429) or failing
        // (5xx, unexpected answers).
        expr: '%s == 1\n' % workspaceFailing('reason=~"rate_limited|api_error"'),
        summary(t): 'The ElevenLabs API fails the polls of workspace {{ $labels.workspace }}',
        description(t): 'The ElevenLabs API has answered the polls of workspace {{ $labels.workspace }} (job {{ $labels.job }}) with rate limits (429) or server errors for %s; its link states may be stale. elevenlabs_link_monitor_workspace_failing{reason} says which; for rate limits lower elevenlabs.max_requests_per_second or max_concurrency, or lengthen poll.interval.' % forWords('ElevenLabsWorkspacePollingFailing'),
        grafana: {
          uid: 'ellm-workspace-polling-failing',
          expr: workspaceFailing('reason=~"rate_limited|api_error"'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorDown',
        expr: '%s == 0\n' % S('up'),
        summary(t): 'elevenlabs-link-monitor {{ $labels.instance }} is down',
        description(t): 'Prometheus has failed to scrape elevenlabs-link-monitor at {{ $labels.instance }} (job {{ $labels.job }}) for %s: no ElevenLabs agent link is being watched by it.' % forWords('ElevenLabsLinkMonitorDown'),
        grafana: {
          uid: 'ellm-monitor-down',
          expr: S('up'),
          evaluator: ['lt', 1],
          noData: 'OK',  // no target at all is ElevenLabsLinkMonitorAbsent's case
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorAbsent',
        // absent() carries the selector's equality matchers as labels: with a namespace in
        // the selector, each monitor is told apart.
        expr: 'absent(%s)\n' % S('up'),
        summary(t): 'elevenlabs-link-monitor is not scraped',
        description(t): 'Prometheus has had no target for job {{ $labels.job }} for %s: the monitor is not deployed, or its scrape config or ServiceMonitor does not select it. No ElevenLabs agent link is being watched.' % forWords('ElevenLabsLinkMonitorAbsent'),
        grafana: {
          uid: 'ellm-monitor-absent',
          // absent() returns nothing while all is well; the count says the same and always
          // returns a sample, 0 (with absent()'s labels) once the target is gone.
          expr: 'count(%s) or absent(%s) * 0' % [S('up'), S('up')],
          evaluator: ['lt', 1],
          noData: 'Alerting',
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorConfigReloadFailed',
        expr: '%s == 0\n' % S('elevenlabs_link_monitor_config_last_reload_successful'),
        summary(t): 'elevenlabs-link-monitor {{ $labels.instance }} failed to reload its config',
        description(t): 'The last config reload of elevenlabs-link-monitor at {{ $labels.instance }} (job {{ $labels.job }}) failed; it keeps running with the previous config. Run `elevenlabs-link-monitor validate-config` and fix the reported lines.',
        grafana: {
          uid: 'ellm-config-reload-failed',
          expr: S('elevenlabs_link_monitor_config_last_reload_successful'),
          evaluator: ['lt', 1],
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorCyclesIncomplete',
        // A cycle cut short at its deadline (90% of poll.interval) leaves agents unpolled
        // until a later cycle: they are polled less often than configured. increase() ignores
        // the counter's reset to 0 on a restart. One overrun keeps the expression true for an
        // hour, so even a lone overrun fires from 30 to 60 minutes after it.
        expr: 'increase(%s[1h]) > 0\n' % S('elevenlabs_link_monitor_cycles_overrun_total'),
        summary(t): 'elevenlabs-link-monitor {{ $labels.instance }} cannot poll every agent within its poll interval',
        description(t): 'elevenlabs-link-monitor at {{ $labels.instance }} (job {{ $labels.job }}) keeps cutting poll cycles short at their deadline (90% of poll.interval): it cannot poll every agent in time, so agents are polled less often than configured. Raise elevenlabs.max_requests_per_second or elevenlabs.max_concurrency within the API\'s limits, or lengthen poll.interval (shards share the rate limit, so they help only when concurrency or CPU is short); see Cycles and limits in docs/failure-behaviour.md.',
        grafana: {
          uid: 'ellm-cycles-incomplete',
          expr: 'increase(%s[1h])' % S('elevenlabs_link_monitor_cycles_overrun_total'),
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorCyclesStale',
        // The monitor is up and answers scrapes, but no full poll cycle has finished for
        // staleIntervals (3) poll intervals (or, before its first one, since it started): a
        // hung scheduler or a loop stuck on something. CyclesIncomplete does not cover it (no
        // cycle ends, so none overruns), nor do the link alerts (they keep the last state).
        // A monitor that exports no poll interval (older than 0.5) is not judged.
        expr: |||
          (
          %(age)s
          )
          > on (%(I)s)
          (%(limit)s)
          and on (%(I)s)
          (max by (%(I)s) (%(up)s) == 1)
        ||| % { age: indent(cycleAge), I: I, limit: cycleLimit, up: S('up') },
        summary(t): 'elevenlabs-link-monitor {{ $labels.instance }} has finished no poll cycle for %s' % t.value,
        description(t): 'elevenlabs-link-monitor at {{ $labels.instance }} (job {{ $labels.job }}) answers scrapes but has finished no full poll cycle for %s, over %d poll intervals: no link state is being refreshed. Look at its logs for cycle and scheduler errors (elevenlabs_link_monitor_scheduler_events_total) and restart it; see the runbook.' % [t.value, c.staleIntervals],
        grafana: {
          uid: 'ellm-cycles-stale',
          // The age where beyond the limit, else 0.
          expr: '(\n%s\n)\n> on (%s) (%s)\nor\n(\n%s\n) * 0' % [cycleAge, I, cycleLimit, cycleAge],
          evaluator: ['gt', 0],
        },
      },
      {
        alert: 'ElevenLabsLinkMonitorDiscoveryFailing',
        // A discovering workspace whose listing fails keeps its last list or, failing from the
        // start, watches none of its agents: no link alert can tell. It fires after
        // staleIntervals (3) discovery intervals without a successful listing, from the
        // interval the monitor exports: one or two failed listings are not worth a
        // notification, three in a row are.
        expr: |||
          %(age)s
          > on (%(I)s) group_left ()
          %(limit)s
        ||| % { age: discoveryAge, I: I, limit: discoveryLimit },
        summary(t): 'elevenlabs-link-monitor {{ $labels.instance }} cannot list the agents of workspace {{ $labels.workspace }}',
        description(t): "elevenlabs-link-monitor at {{ $labels.instance }} (job {{ $labels.job }}) has had no successful agent listing of workspace {{ $labels.workspace }} for %s: agents added since are not watched, and if no listing ever succeeded, none of the workspace's agents are. elevenlabs_link_monitor_discovery_errors_total and the monitor's discovery_failed log lines give the reason (unauthorized: grant the key convai_read or rotate it); see the runbook." % t.value,
        grafana: {
          uid: 'ellm-discovery-failing',
          // The age where beyond the limit, else 0.
          expr: '(\n%s\n)\n> on (%s) group_left ()\n(\n%s\n)\nor\n(\n%s\n) * 0' % [discoveryAge, I, discoveryLimit, discoveryAge],
          evaluator: ['gt', 0],
        },
      },
    ],

  prometheusAlerts+:: {
    local c = $._config,
    local t = $._prometheusText(c),
    groups+: [
      {
        name: 'elevenlabs-link-monitor',
        rules: [
          {
            alert: d.alert,
            expr: d.expr,
            'for': c.alerts[d.alert]['for'],
            // A weighted alert's severity is a label of its expression.
            [if !std.get(d, 'weighted', false) then 'labels']: { severity: c.alerts[d.alert].severity },
            annotations: {
              summary: d.summary(t),
              description: d.description(t),
              runbook_url: lib.runbookURL(c, d.alert),
            },
          }
          for d in $._alertDefinitions(c)
        ],
      },
    ],
  },

  // The Grafana-managed twins (the file-provisioning rules of deploy/grafana/): query A,
  // reduced to its last value (B), against the evaluator (C). N names the agent and T gives
  // its threshold, for the annotations only.
  grafanaManagedAlerts+:: [
    local c = $._config;
    local t = $._grafanaText(c);
    // The per-agent alerts are the ElevenLabsAgent* ones (workspace and monitor alerts are
    // named ElevenLabsWorkspace* and ElevenLabsLinkMonitor*).
    local perAgent = std.startsWith(d.alert, 'ElevenLabsAgent');
    {
      uid: d.grafana.uid,
      title: d.alert,
      expr: d.grafana.expr,
      evaluator: d.grafana.evaluator,
      'for': c.alerts[d.alert]['for'],
      noData: std.get(d.grafana, 'noData', 'OK'),
      // null: the severity is a label of the query (weighted by use).
      severity: if std.get(d, 'weighted', false) then null else c.alerts[d.alert].severity,
      summary: d.summary(t),
      description: d.description(t),
      runbook_url: lib.runbookURL(c, d.alert),
      names: if perAgent then std.get(d.grafana, 'names', grafana(c).names) else null,
      threshold: std.get(d.grafana, 'threshold', null),
    }
    for d in $._alertDefinitions($._config)
  ],
}
