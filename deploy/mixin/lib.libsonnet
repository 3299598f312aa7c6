// PromQL building blocks shared by the recording rules, the alerts and their Grafana twins.
// Each takes the mixin's _config (`c`).
{
  // `name{<selector>,<extra>}`: every raw series the rules read goes through this.
  metric(c, name, extra=''):: name + '{' + std.join(',', std.filter(function(s) s != '', [c.selector, extra])) + '}',

  // A label list for by (...) / on (...).
  list(labels):: std.join(', ', labels),

  // Who an alert is about, always with the identity labels first.
  agentKeys(c):: c.identityLabels + ['workspace', 'agent_id'],
  workspaceKeys(c):: c.identityLabels + ['workspace'],
  instanceKeys(c):: c.identityLabels + ['instance'],
  ownerKeys(c):: self.agentKeys(c) + c.ownerLabels,

  agents(c):: self.list(self.agentKeys(c)),
  workspaces(c):: self.list(self.workspaceKeys(c)),
  instances(c):: self.list(self.instanceKeys(c)),
  owners(c):: self.list(self.ownerKeys(c)),
  ownerJoin(c):: self.list(c.ownerLabels),

  // The section of docs/runbook.md an alert links to: its heading's GitHub anchor (the
  // alert's name is letters only, so the anchor is the name in lower case).
  runbookURL(c, alert):: c.runbookURLPattern % std.asciiLower(alert),

  // The seconds of a duration of digits with one unit (s, m, h, d, w), or of a number, as
  // PromQL text: PromQL compares with numbers, not durations. A `__HELM_...__` placeholder
  // (build.py's, for the chart) stays as it is; anything else is refused.
  seconds(duration)::
    if std.isNumber(duration) then std.toString(duration)
    else if std.startsWith(duration, '__HELM_') then duration
    else
      local unit = std.substr(duration, std.length(duration) - 1, 1);
      local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
      local n = std.substr(duration, 0, std.length(duration) - 1);
      assert std.objectHas(units, unit) && std.length(n) > 0 && std.length(std.filter(function(ch) ch < '0' || ch > '9', std.stringChars(n))) == 0 :
             'not a duration of digits with one unit (s, m, h, d, w): ' + duration;
      std.toString(std.parseInt(n) * units[unit]),

  // '30m' as '30 minutes' in the alerts' text.
  words(duration)::
    local unit = std.substr(duration, std.length(duration) - 1, 1);
    local n = std.substr(duration, 0, std.length(duration) - 1);
    local name = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[unit];
    n + ' ' + name + (if n == '1' then '' else 's'),

  // A Go text/template printf that selects the alert's own agent from a series: the
  // selector, then each identity label and workspace/agent_id with the alert's value.
  // Recorded series (`selected=false`) carry only the identity labels, not the selector's.
  agentMatchers(c, name, extra='', selected=true)::
    local keys = self.agentKeys(c);
    'printf `%s{%s}` %s' % [
      name,
      std.join(',', std.filter(function(s) s != '', [if selected then c.selector else ''] + ['%s=%%q' % k for k in keys] + [extra])),
      std.join(' ', ['$labels.%s' % k for k in keys]),
    ],
}
