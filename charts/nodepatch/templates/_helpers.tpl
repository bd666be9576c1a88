{{/* The chart's name, or nameOverride. */}}
{{- define "nodepatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name. */}}
{{- define "nodepatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nodepatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "nodepatch.labels" -}}
helm.sh/chart: {{ include "nodepatch.chart" . }}
{{ include "nodepatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the agent's pods; they never change across upgrades. */}}
{{- define "nodepatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodepatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodepatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nodepatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The user name the API server gives the agent's ServiceAccount. */}}
{{- define "nodepatch.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "nodepatch.serviceAccountName" .) }}
{{- end }}

{{- define "nodepatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The job label of the agent's scrape targets. */}}
{{- define "nodepatch.job" -}}
{{- .Values.alerts.job | default (include "nodepatch.name" .) }}
{{- end }}

{{/*
nodepatch.monitoringEnabled: "true" when a monitoring.coreos.com object whose
switch is given should be rendered: the switch is true, or it is "auto" and the
cluster serves monitoring.coreos.com/v1. Call with (list $ .Values.x.enabled).
*/}}
{{- define "nodepatch.monitoringEnabled" -}}
{{- $root := index . 0 }}
{{- $switch := index . 1 }}
{{- if eq (toString $switch) "true" }}true
{{- else if and (eq (toString $switch) "auto") ($root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true
{{- end }}
{{- end }}

{{/*
nodepatch.seconds: a Prometheus duration made of [0-9]+[smhdw] parts (the schema
allows no other) as a whole number of seconds, for comparisons with time().
*/}}
{{- define "nodepatch.seconds" -}}
{{- $units := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+[smhdw]" . -1 }}
{{- $n := regexFind "^[0-9]+" . | atoi }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $total = add $total (mul $n (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
nodepatch.goNanoseconds: a Go duration (the schema's goDuration: 0, or parts such
as 1h30m, 1.5s, 200ms) as a whole number of nanoseconds, computed in integers as
Go's time.ParseDuration does, for the checks below that compare two durations.
*/}}
{{- define "nodepatch.goNanoseconds" -}}
{{- $units := dict "ns" 1 "us" 1000 "µs" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := get $units (trimPrefix $number .) }}
{{- $whole := regexFind "^[0-9]+" $number }}
{{- /* atoi, not int64: int64 reads a leading 0 as octal. */}}
{{- $total = add $total (mul (atoi $whole) $unit) }}
{{- $frac := trimPrefix "." (trimPrefix $whole $number) }}
{{- if $frac }}
{{- $scale := 1 }}
{{- range until (len $frac) }}{{ $scale = mul $scale 10 }}{{ end }}
{{- $total = add $total (div (mul (atoi $frac) $unit) $scale) }}
{{- end }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
nodepatch.nodeLabelKeys: the label keys, besides nodepatch.io/ ones, that the
agent's flags make it set on its Node, as a JSON list (which is also a CEL list
literal): the admission policy allows changes to exactly these.
*/}}
{{- define "nodepatch.nodeLabelKeys" -}}
{{- $l := .Values.agent.nodeLabels }}
{{- $keys := list }}
{{- if $l.excludeFromLoadBalancers }}
{{- $keys = append $keys "node.kubernetes.io/exclude-from-external-load-balancers" }}
{{- end }}
{{- range concat $l.preReboot $l.postReboot }}
{{- $keys = append $keys (splitList "=" . | first) }}
{{- end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/* The D-Bus address the agent dials. */}}
{{- define "nodepatch.dbusAddress" -}}
{{- .Values.agent.dbusAddress | default (printf "unix:path=%s/system_bus_socket" (trimSuffix "/" .Values.hostMounts.dbus.mountPath)) }}
{{- end }}

{{/* Fails the render on combinations the schema cannot express. */}}
{{- define "nodepatch.validate" -}}
{{- $a := .Values.agent }}
{{- if and (eq $a.reboot.method "command") (not $a.reboot.command) }}
{{- fail "agent.reboot.command must be set when agent.reboot.method is \"command\"" }}
{{- end }}
{{- if not $a.sentinel.command }}
{{- if not .Values.hostMounts.run.enabled }}
{{- fail "agent.sentinel.command must be set when hostMounts.run.enabled is false: the agent cannot see the sentinel file" }}
{{- end }}
{{- $dir := printf "%s/" (trimSuffix "/" .Values.hostMounts.run.mountPath) }}
{{- if not (hasPrefix $dir $a.sentinel.file) }}
{{- fail (printf "agent.sentinel.file %q is not inside hostMounts.run.mountPath %q, so the agent could never see it" $a.sentinel.file .Values.hostMounts.run.mountPath) }}
{{- end }}
{{- end }}
{{- with $a.blockers.prometheus }}
{{- if not .url }}
{{- range $name, $value := dict "alertFilterRegexp" .alertFilterRegexp "alertLabelMatchers" .alertLabelMatchers "blockWhileQuery" .blockWhileQuery }}
{{- if $value }}
{{- fail (printf "agent.blockers.prometheus.%s %q needs agent.blockers.prometheus.url: there is no Prometheus to ask" $name $value) }}
{{- end }}
{{- end }}
{{- if $a.health.query }}
{{- fail (printf "agent.health.query %q needs agent.blockers.prometheus.url: there is no Prometheus to ask" $a.health.query) }}
{{- end }}
{{- end }}
{{- end }}
{{- $healthTimeout := include "nodepatch.goNanoseconds" $a.health.timeout | atoi }}
{{- if le $healthTimeout 0 }}
{{- fail (printf "agent.health.timeout %q must be a positive duration" $a.health.timeout) }}
{{- end }}
{{- if ge (include "nodepatch.goNanoseconds" $a.health.soak | atoi) $healthTimeout }}
{{- fail (printf "agent.health.soak %q is not shorter than agent.health.timeout %q: every cycle would fail before its soak ends" $a.health.soak $a.health.timeout) }}
{{- end }}
{{- /* The agent takes --window only with the one-window flags at their defaults. */}}
{{- with $a.window }}
{{- if and $a.schedule.windows (or (ne (join "," .days) "mon,tue,wed,thu,fri,sat,sun") (ne .startTime "00:00") (ne .endTime "24:00") (ne .timeZone "UTC")) }}
{{- fail "agent.schedule.windows and agent.window both set the maintenance window: set one of them (leave agent.window at its defaults)" }}
{{- end }}
{{- end }}
{{- $gateNames := list }}
{{- range $gate := $a.gates }}
{{- $name := splitList "@" . | first }}
{{- if has $name $gateNames }}
{{- fail (printf "agent.gates %q: gate %s is given twice (one gate stands at one point)" . $name) }}
{{- end }}
{{- $gateNames = append $gateNames $name }}
{{- range regexFindAll ",timeout=[^,]+" . -1 }}
{{- if le (include "nodepatch.goNanoseconds" (trimPrefix ",timeout=" .) | atoi) 0 }}
{{- fail (printf "agent.gates %q: %s: the timeout must be a positive duration" $gate (trimPrefix "," .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* --reboot-after-drain-timeout wins over --drain-timeout-action in the agent:
       together, one of them would be ignored without a word. */}}
{{- if and $a.reboot.afterDrainTimeout (ne $a.drain.timeoutAction "retry") }}
{{- fail (printf "agent.reboot.afterDrainTimeout and agent.drain.timeoutAction %q both say what a timed-out drain leads to: set one of them" $a.drain.timeoutAction) }}
{{- end }}
{{- if and (include "nodepatch.monitoringEnabled" (list . .Values.metrics.serviceMonitor.enabled)) (include "nodepatch.monitoringEnabled" (list . .Values.metrics.podMonitor.enabled)) }}
{{- fail "metrics.serviceMonitor and metrics.podMonitor are both enabled: every agent would be scraped twice; enable one" }}
{{- end }}
{{- if and (include "nodepatch.monitoringEnabled" (list . .Values.metrics.serviceMonitor.enabled)) (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor needs metrics.service.enabled: a ServiceMonitor finds the agents through the Service" }}
{{- end }}
{{- end }}

{{/* Labels that select the rollout controller's pods (not the agents'). */}}
{{- define "nodepatch.controllerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "nodepatch.name" . }}-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodepatch.controllerLabels" -}}
helm.sh/chart: {{ include "nodepatch.chart" . }}
{{ include "nodepatch.controllerSelectorLabels" . }}
app.kubernetes.io/component: controller
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
