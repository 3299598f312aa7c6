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
{{- end -}}
{{- $_ := set $config "poll" .Values.poll -}}
{{- $_ := set $config "thresholds" .Values.thresholds -}}
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
