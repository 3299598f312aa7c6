{{/* The chart's name; also the `job` label the alert rules expect, so it is not overridable. */}}
{{- define "elm.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{- define "elm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "elm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "elm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "elm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: elevenlabs-link-monitor
{{- end -}}

{{- define "elm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "elm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "elm.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "elm.apiKeySecret" -}}
{{- if .Values.apiKey.create -}}
{{- printf "%s-api-key" (include "elm.fullname" .) -}}
{{- else -}}
{{- .Values.apiKey.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Seconds of a duration: a number, or digits with one unit (s, m, h, d, w), as the schema allows. */}}
{{- define "elm.seconds" -}}
{{- $text := toString . -}}
{{- $units := dict "" 1 "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 -}}
{{- $number := regexReplaceAll "^([0-9]+)([smhdw]?)$" $text "${1}" -}}
{{- $unit := regexReplaceAll "^([0-9]+)([smhdw]?)$" $text "${2}" -}}
{{- if not (regexMatch "^[0-9]+[smhdw]?$" $text) -}}
{{- fail (printf "thresholds: %q is not a number of seconds or digits with one unit (s, m, h, d, w)" $text) -}}
{{- end -}}
{{- mul (atoi $number) (get $units $unit) -}}
{{- end -}}

{{- define "elm.warningSeconds" -}}
{{- include "elm.seconds" .Values.thresholds.warning -}}
{{- end -}}

{{- define "elm.criticalSeconds" -}}
{{- include "elm.seconds" .Values.thresholds.critical -}}
{{- end -}}

{{/* The active window of the alerts weighted by use, in seconds. */}}
{{- define "elm.activeWindowSeconds" -}}
{{- include "elm.seconds" .Values.usage.active_window -}}
{{- end -}}

{{/* The owner labels every per-agent alert carries: "team, env" (group_left's list). */}}
{{- define "elm.ownerLabels" -}}
{{- join ", " .Values.prometheusRule.ownerLabels -}}
{{- end -}}

{{/* The same, after the owner rule's (job, workspace, agent_id: ", team, env". */}}
{{- define "elm.ownerLabelsBy" -}}
{{- range .Values.prometheusRule.ownerLabels }}, {{ . }}{{ end -}}
{{- end -}}

{{- define "elm.scheme" -}}
{{- if .Values.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{- define "elm.configDir" -}}/etc/elevenlabs-link-monitor{{- end -}}
{{- define "elm.keyDir" -}}/var/run/secrets/elevenlabs{{- end -}}
{{- define "elm.tlsDir" -}}/var/run/secrets/elevenlabs-link-monitor-tls{{- end -}}

{{/* The monitor's config file, from the values. */}}
{{- define "elm.config" -}}
{{- $config := dict -}}
{{- if .Values.workspaces -}}
{{- $workspaces := list -}}
{{- range $index, $workspace := .Values.workspaces -}}
{{- $file := printf "%s/%s/%s" (include "elm.keyDir" $) $workspace.name (default "api-key" $workspace.secretKey) -}}
{{- $workspaces = append $workspaces (merge (dict "api_key_file" $file) (omit $workspace "existingSecret" "secretKey")) -}}
{{- end -}}
{{- $_ := set $config "workspaces" $workspaces -}}
{{- else -}}
{{- $file := printf "%s/%s" (include "elm.keyDir" .) .Values.apiKey.secretKey -}}
{{- $_ := set $config "elevenlabs" (merge (dict "api_key_file" $file) .Values.elevenlabs) -}}
{{- $_ := set $config "agents" .Values.agents -}}
{{- $_ := set $config "discover" .Values.discover -}}
{{- with .Values.labels -}}
{{- $_ := set $config "labels" . -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "poll" .Values.poll -}}
{{- $_ := set $config "thresholds" .Values.thresholds -}}
{{- $_ := set $config "usage" .Values.usage -}}
{{- $_ := set $config "alerts" .Values.alerts -}}
{{- $_ := set $config "logging" .Values.logging -}}
{{- $_ := set $config "metrics" .Values.metrics -}}
{{- $server := dict "host" "0.0.0.0" "port" (int .Values.port) "status_page" .Values.statusPage -}}
{{- if .Values.tls.enabled -}}
{{- $_ := set $server "tls" (dict "cert_file" (printf "%s/tls.crt" (include "elm.tlsDir" .)) "key_file" (printf "%s/tls.key" (include "elm.tlsDir" .))) -}}
{{- end -}}
{{- $_ := set $config "server" $server -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Seconds of any duration the monitor reads (a number, or parts such as 1h30m, 500ms). */}}
{{- define "elm.durationSeconds" -}}
{{- $text := toString . -}}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $text -}}
{{- float64 $text -}}
{{- else -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w)" $text -1 -}}
{{- $unit := regexReplaceAll "^[0-9.]+" . "" -}}
{{- $number := regexReplaceAll "(ms|s|m|h|d|w)$" . "" -}}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
{{- end -}}

{{/*
The monitor's bounds on a duration (config.py), which a JSON schema cannot check on strings
such as 500ms or 2d: a list of the key, its value, the least and the most seconds, and the
least as text ("" for "greater than 0"). A value the monitor refuses fails the install here
rather than crash-looping the pod.
*/}}
{{- define "elm.checkDuration" -}}
{{- $key := index . 0 -}}
{{- $value := index . 1 -}}
{{- $seconds := float64 (include "elm.durationSeconds" $value) -}}
{{- $least := index . 4 -}}
{{- if and (eq $least "") (le $seconds 0.0) -}}
{{- fail (printf "%s (%v) must be greater than 0" $key $value) -}}
{{- else if and (ne $least "") (lt $seconds (float64 (index . 2))) -}}
{{- fail (printf "%s (%v) must be at least %s" $key $value $least) -}}
{{- end -}}
{{- if gt $seconds (float64 (index . 3)) -}}
{{- fail (printf "%s (%v) must be at most %s" $key $value (index . 5)) -}}
{{- end -}}
{{- end -}}

{{/* Agent ids once per workspace: the monitor refuses a repeated one. */}}
{{- define "elm.checkAgents" -}}
{{- $where := index . 0 -}}
{{- $seen := dict -}}
{{- range $index, $agent := index . 1 -}}
{{- if hasKey $seen (toString $agent.id) -}}
{{- fail (printf "%s[%d]: agent id %q is listed twice" $where $index $agent.id) -}}
{{- end -}}
{{- $_ := set $seen (toString $agent.id) true -}}
{{- end -}}
{{- end -}}

{{/*
A workspace's or an agent's thresholds: the inherited pair (a dict of warning and critical:
seconds, the text given and where it is set) with the override's keys over it, returned as
JSON. The monitor's checks: each key at most 3650d, and warning above critical, in one line
naming the override (and where an inherited value comes from).
*/}}
{{- define "elm.resolveThresholds" -}}
{{- $where := index . 0 -}}
{{- $pair := deepCopy (index . 1) -}}
{{- $override := index . 2 -}}
{{- if $override -}}
{{- range $key := list "warning" "critical" -}}
{{- if and (hasKey $override $key) (not (kindIs "invalid" (index $override $key))) -}}
{{- $value := index $override $key -}}
{{- include "elm.checkDuration" (list (printf "%s.%s" $where $key) $value 0 315360000 "" "3650d") -}}
{{- $_ := set $pair $key (dict "seconds" (float64 (include "elm.durationSeconds" $value)) "text" (toString $value) "from" $where) -}}
{{- end -}}
{{- end -}}
{{- if le (float64 $pair.warning.seconds) (float64 $pair.critical.seconds) -}}
{{- $warning := $pair.warning.text -}}
{{- if ne $pair.warning.from $where }}{{ $warning = printf "%s, from %s" $warning $pair.warning.from }}{{ end -}}
{{- $critical := $pair.critical.text -}}
{{- if ne $pair.critical.from $where }}{{ $critical = printf "%s, from %s" $critical $pair.critical.from }}{{ end -}}
{{- fail (printf "%s: warning (%s) must be greater than critical (%s)" $where $warning $critical) -}}
{{- end -}}
{{- end -}}
{{- toJson $pair -}}
{{- end -}}

{{/* Every check of the values that the monitor makes and the schema cannot. */}}
{{- define "elm.checkValues" -}}
{{- include "elm.checkDuration" (list "poll.interval" .Values.poll.interval 1 86400 "1s" "1d") -}}
{{- include "elm.checkDuration" (list "poll.discovery_interval" .Values.poll.discovery_interval 1 86400 "1s" "1d") -}}
{{- if ge (float64 (include "elm.durationSeconds" .Values.poll.jitter)) (float64 (include "elm.durationSeconds" .Values.poll.interval)) -}}
{{- fail (printf "poll.jitter (%v) must be shorter than poll.interval (%v)" .Values.poll.jitter .Values.poll.interval) -}}
{{- end -}}
{{- include "elm.checkDuration" (list "alerts.repeat_interval" .Values.alerts.repeat_interval 1 2592000 "1s" "30d") -}}
{{- include "elm.checkDuration" (list "usage.active_window" .Values.usage.active_window 3600 315360000 "1h" "3650d") -}}
{{- $volumes := dict -}}
{{- range .Values.extraVolumes -}}
{{- $_ := set $volumes .name true -}}
{{- end -}}
{{- range $index, $mount := .Values.extraVolumeMounts -}}
{{- if not (hasKey $volumes $mount.name) -}}
{{- fail (printf "extraVolumeMounts[%d]: volume %q is not one of extraVolumes" $index $mount.name) -}}
{{- end -}}
{{- end -}}
{{- if gt (int (include "elm.warningSeconds" .)) 315360000 -}}
{{- fail (printf "thresholds.warning (%v) must be at most 3650d" .Values.thresholds.warning) -}}
{{- end -}}
{{- $top := dict
  "warning" (dict "seconds" (float64 (include "elm.warningSeconds" .)) "text" (toString .Values.thresholds.warning) "from" "thresholds")
  "critical" (dict "seconds" (float64 (include "elm.criticalSeconds" .)) "text" (toString .Values.thresholds.critical) "from" "thresholds") -}}
{{- if and .Values.workspaces .Values.labels -}}
{{- fail "labels: with workspaces, set labels under each of workspaces[] instead" -}}
{{- end -}}
{{- if .Values.workspaces -}}
{{- range $index, $workspace := .Values.workspaces -}}
{{- $where := printf "workspaces[%d]" $index -}}
{{- $pair := fromJson (include "elm.resolveThresholds" (list (printf "%s.thresholds" $where) $top $workspace.thresholds)) -}}
{{- range $a, $agent := (default list $workspace.agents) -}}
{{- $_ := include "elm.resolveThresholds" (list (printf "%s.agents[%d].thresholds" $where $a) $pair $agent.thresholds) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- range $a, $agent := .Values.agents -}}
{{- $_ := include "elm.resolveThresholds" (list (printf "agents[%d].thresholds" $a) $top $agent.thresholds) -}}
{{- end -}}
{{- end -}}
{{- if .Values.workspaces -}}
{{- $names := dict -}}
{{- range $index, $workspace := .Values.workspaces -}}
{{- if hasKey $names $workspace.name -}}
{{- fail (printf "workspaces[%d]: workspace name %q is used twice" $index $workspace.name) -}}
{{- end -}}
{{- $_ := set $names $workspace.name true -}}
{{- if hasKey $workspace "timeout" -}}
{{- include "elm.checkDuration" (list (printf "workspaces[%d].timeout" $index) $workspace.timeout 0 300 "" "5m") -}}
{{- end -}}
{{- include "elm.checkAgents" (list (printf "workspaces[%d].agents" $index) (default list $workspace.agents)) -}}
{{- end -}}
{{- else -}}
{{- include "elm.checkDuration" (list "elevenlabs.timeout" .Values.elevenlabs.timeout 0 300 "" "5m") -}}
{{- include "elm.checkAgents" (list "agents" .Values.agents) -}}
{{- end -}}
{{- end -}}
