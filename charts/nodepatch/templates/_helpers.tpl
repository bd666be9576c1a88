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
