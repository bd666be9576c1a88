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
{{- $v := dict }}{{- include "nodepatch.values" (list . $v) }}
{{- $l := $v.agent.nodeLabels }}
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
{{- $v := dict }}{{- include "nodepatch.values" (list . $v) }}
{{- $a := $v.agent }}
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

{{/*
nodepatch.values fills the dict given second with the values the templates
render: "agent", "metrics" and "controller", copies of .Values' own with kured's
chart values (configuration.*: kured's flags under the names kured's chart gives
them) put in place of the nodepatch values they map to, so that a kured user's
values file works as it is. The mapping is pkg/kured's (kured.Flags(), as
`nodepatch migrate from-kured` converts a running kured), and test/chart holds
the two to the same agent flags.

A configuration key counts as set when kured's chart would pass its flag to
kured: when it is not empty, 0 or false. A set key replaces the nodepatch value
it maps to while that value is at the chart's default (a kured user's file wins
over nodepatch's defaults); when both are set and differ, the render fails
naming both, since either choice would drop one of the user's settings without
a word. The defaults are written next to each mapping below (a template cannot
read values.yaml); test/chart renders every mapping with values.yaml given
explicitly, which fails if one of them is not values.yaml's.

Call as {{- $v := dict }}{{- include "nodepatch.values" (list . $v) }}.
*/}}
{{- define "nodepatch.values" -}}
{{- $root := index . 0 }}
{{- $out := index . 1 }}
{{- $c := $root.Values.configuration | default dict }}
{{- $a := deepCopy $root.Values.agent }}
{{- $metrics := deepCopy $root.Values.metrics }}
{{- $controller := deepCopy $root.Values.controller }}
{{- $ns := dict }}
{{- /* kured's durations are Go durations, or 0 or "" (unset); as kured, a
       period, timeout or delay of 0 or less means none, so it is not carried. */}}
{{- range $key := list "period" "lockTtl" "lockReleaseDelay" "drainTimeout" "drainDelay" "rebootDelay" }}
{{- $_ := set $ns $key (include "nodepatch.goNanoseconds" (toString (get $c $key)) | atoi) }}
{{- end }}

{{- /* Reboot check. */}}
{{- if gt (get $ns "period") 0 }}
{{- include "nodepatch.kuredTake" (dict "key" "period" "path" "agent.period" "into" $a "field" "period" "default" "1m" "value" (toString $c.period)) }}
{{- end }}
{{- /* kured runs the sentinel command, when set, instead of checking the file.
       kured's chart passes it only with useRebootSentinelHostPath false (its
       default is true), and some versions of it passed it regardless: which one
       the user's kured ran cannot be told from the values, so the render asks. */}}
{{- $hostPathMode := true }}
{{- if hasKey $c "useRebootSentinelHostPath" }}{{ $hostPathMode = $c.useRebootSentinelHostPath }}{{ end }}
{{- if $c.rebootSentinelCommand }}
{{- if $hostPathMode }}
{{- fail "configuration.rebootSentinelCommand is set while configuration.useRebootSentinelHostPath is true (kured's chart's default), with which kured's chart does not pass the command to kured: set configuration.useRebootSentinelHostPath to false to carry the command to agent.sentinel.command, or remove it (docs/migrating-from-kured.md)" }}
{{- end }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootSentinelCommand" "path" "agent.sentinel.command" "into" $a.sentinel "field" "command" "default" "" "value" $c.rebootSentinelCommand) }}
{{- else if $c.rebootSentinel }}
{{- /* kured's chart mounts the sentinel's host folder (useRebootSentinelHostPath)
       and points kured at the file in it, so the value is a host path; without
       the mount, pkg/kured reads it as a host path too (as kured before 1.17,
       which looked on the host through nsenter). nodepatch sees the host's /run
       through hostMounts.run; a file elsewhere is checked on the host. */}}
{{- $path := clean $c.rebootSentinel }}
{{- $rest := "" }}
{{- range list "/run/" "/var/run/" }}{{ if hasPrefix . $path }}{{ $rest = trimPrefix . $path }}{{ end }}{{ end }}
{{- $run := $root.Values.hostMounts.run }}
{{- if and $rest $run.enabled (eq (clean $run.hostPath) "/run") }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootSentinel" "path" "agent.sentinel.file" "into" $a.sentinel "field" "file" "default" "/host/run/reboot-required" "value" (printf "%s/%s" (trimSuffix "/" $run.mountPath) $rest)) }}
{{- else }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootSentinel" "path" "agent.sentinel.command" "into" $a.sentinel "field" "command" "default" "" "value" (printf "test -e '%s'" (replace "'" "'\\''" $path))) }}
{{- end }}
{{- end }}

{{- /* Reboot: kured's default command, and signal 39 (SIGRTMIN+5, which systemd
       takes as "start reboot.target"), are nodepatch's systemd method. */}}
{{- if or $c.rebootMethod $c.rebootCommand $c.rebootSignal }}
{{- if eq ($c.rebootMethod | default "command") "signal" }}
{{- $signal := include "nodepatch.kuredInt" ($c.rebootSignal | default 39) | atoi }}
{{- if ne $signal 39 }}
{{- fail (printf "configuration.rebootSignal %d: nodepatch has no signal method; it reboots through systemd's reboot.target (kured's signal 39). Remove configuration.rebootMethod and configuration.rebootSignal, or set agent.reboot.method command with a command of your own (docs/migrating-from-kured.md)" $signal) }}
{{- end }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootMethod" "path" "agent.reboot.method" "into" $a.reboot "field" "method" "default" "systemd" "value" "systemd") }}
{{- else if $c.rebootCommand }}
{{- $words := regexReplaceAll "\\s+" (trim $c.rebootCommand) " " }}
{{- if has $words (list "/bin/systemctl reboot" "/usr/bin/systemctl reboot" "systemctl reboot") }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootCommand" "path" "agent.reboot.method" "into" $a.reboot "field" "method" "default" "systemd" "value" "systemd") }}
{{- else if $words }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootCommand" "path" "agent.reboot.method" "into" $a.reboot "field" "method" "default" "systemd" "value" "command") }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootCommand" "path" "agent.reboot.command" "into" $a.reboot "field" "command" "default" "" "value" $c.rebootCommand) }}
{{- end }}
{{- end }}
{{- end }}
{{- if gt (get $ns "rebootDelay") 0 }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootDelay" "path" "agent.reboot.delay" "into" $a.reboot "field" "delay" "default" "0s" "value" (toString $c.rebootDelay)) }}
{{- end }}
{{- if $c.forceReboot }}
{{- include "nodepatch.kuredTake" (dict "key" "forceReboot" "path" "agent.reboot.afterDrainTimeout" "into" $a.reboot "field" "afterDrainTimeout" "default" false "value" true) }}
{{- end }}

{{- /* Maintenance window. */}}
{{- with $c.rebootDays }}
{{- $names := dict "0" "sun" "1" "mon" "2" "tue" "3" "wed" "4" "thu" "5" "fri" "6" "sat" }}
{{- range list "sunday" "monday" "tuesday" "wednesday" "thursday" "friday" "saturday" }}
{{- $_ := set $names . (substr 0 3 .) }}{{ $_ := set $names (substr 0 3 .) (substr 0 3 .) }}{{ $_ := set $names (substr 0 2 .) (substr 0 3 .) }}
{{- end }}
{{- $on := dict }}
{{- /* Each item is one --reboot-days, which kured splits at commas. */}}
{{- range . }}
{{- range splitList "," (toString .) }}
{{- $day := get $names (lower .) }}
{{- if not $day }}
{{- fail (printf "configuration.rebootDays: %q is not a day kured reads (0 for Sunday to 6, or a day's first two or three letters or its whole English name)" .) }}
{{- end }}
{{- $_ := set $on $day true }}
{{- end }}
{{- end }}
{{- $days := list }}
{{- range list "mon" "tue" "wed" "thu" "fri" "sat" "sun" }}{{ if hasKey $on . }}{{ $days = append $days . }}{{ end }}{{ end }}
{{- include "nodepatch.kuredTake" (dict "key" "rebootDays" "path" "agent.window.days" "into" $a.window "field" "days" "default" (list "mon" "tue" "wed" "thu" "fri" "sat" "sun") "value" $days) }}
{{- end }}
{{- /* kured's window runs from its start second through its whole end second;
       nodepatch's from a start minute up to an end minute, end excluded. Seconds
       round up to the next minute (hh:mm:59 to the end of its minute exactly),
       giving no reboot less room than kured did and none an earlier start. */}}
{{- if or $c.startTime $c.endTime }}
{{- $start := include "nodepatch.kuredMinutes" (dict "key" "startTime" "value" ($c.startTime | default "0:00")) | atoi }}
{{- $end := include "nodepatch.kuredMinutes" (dict "key" "endTime" "value" ($c.endTime | default "23:59:59")) | atoi }}
{{- if ge $start 1440 }}{{ $start = 1439 }}{{ end }}
{{- if eq $start $end }}
{{- fail (printf "configuration.startTime %q and configuration.endTime %q: kured's window is at most a minute long; nodepatch's window needs a start and an end that differ" ($c.startTime | default "0:00") ($c.endTime | default "23:59:59")) }}
{{- end }}
{{- if $c.startTime }}
{{- include "nodepatch.kuredTake" (dict "key" "startTime" "path" "agent.window.startTime" "into" $a.window "field" "startTime" "default" "00:00" "value" (printf "%02d:%02d" (div $start 60) (mod $start 60))) }}
{{- end }}
{{- if $c.endTime }}
{{- include "nodepatch.kuredTake" (dict "key" "endTime" "path" "agent.window.endTime" "into" $a.window "field" "endTime" "default" "24:00" "value" (printf "%02d:%02d" (div $end 60) (mod $end 60))) }}
{{- end }}
{{- end }}
{{- with $c.timeZone }}
{{- include "nodepatch.kuredTake" (dict "key" "timeZone" "path" "agent.window.timeZone" "into" $a.window "field" "timeZone" "default" "UTC" "value" .) }}
{{- end }}

{{- /* Drain (before the lock: the lock TTL's floor depends on its timeout). */}}
{{- if gt (get $ns "drainTimeout") 0 }}
{{- include "nodepatch.kuredTake" (dict "key" "drainTimeout" "path" "agent.drain.timeout" "into" $a.drain "field" "timeout" "default" "10m" "value" (toString $c.drainTimeout)) }}
{{- end }}
{{- with $c.drainGracePeriod }}
{{- /* Below -1 is each pod's own grace period, as -1 is, for kured and nodepatch alike. */}}
{{- $n := include "nodepatch.kuredInt" . | atoi }}
{{- include "nodepatch.kuredTake" (dict "key" "drainGracePeriod" "path" "agent.drain.gracePeriod" "into" $a.drain "field" "gracePeriod" "default" -1 "value" (max $n -1)) }}
{{- end }}
{{- with $c.drainPodSelector }}
{{- include "nodepatch.kuredTake" (dict "key" "drainPodSelector" "path" "agent.drain.podSelector" "into" $a.drain "field" "podSelector" "default" "" "value" .) }}
{{- end }}
{{- with $c.skipWaitForDeleteTimeout }}
{{- $n := include "nodepatch.kuredInt" . | atoi }}
{{- if gt $n 0 }}
{{- include "nodepatch.kuredTake" (dict "key" "skipWaitForDeleteTimeout" "path" "agent.drain.skipWaitForDeleteTimeout" "into" $a.drain "field" "skipWaitForDeleteTimeout" "default" 0 "value" $n) }}
{{- end }}
{{- end }}
{{- if gt (get $ns "drainDelay") 0 }}
{{- include "nodepatch.kuredTake" (dict "key" "drainDelay" "path" "agent.drain.delay" "into" $a.drain "field" "delay" "default" "0s" "value" (toString $c.drainDelay)) }}
{{- end }}
{{- range $key, $field := dict "preRebootNodeLabels" "preReboot" "postRebootNodeLabels" "postReboot" }}
{{- with get $c $key }}
{{- $labels := list }}
{{- range . }}{{ range splitList "," . }}{{ $labels = append $labels . }}{{ end }}{{ end }}
{{- include "nodepatch.kuredTake" (dict "key" $key "path" (printf "agent.nodeLabels.%s" $field) "into" $a.nodeLabels "field" $field "default" list "value" (uniq $labels)) }}
{{- end }}
{{- end }}

{{- /* Lock. */}}
{{- with $c.concurrency }}
{{- $n := include "nodepatch.kuredInt" . | atoi | max 1 | min 1000 }}
{{- include "nodepatch.kuredTake" (dict "key" "concurrency" "path" "agent.concurrency" "into" $a "field" "concurrency" "default" 1 "value" $n) }}
{{- /* With the rollout controller the limit is its maxUnavailable. */}}
{{- include "nodepatch.kuredTake" (dict "key" "concurrency" "path" "controller.maxUnavailable" "into" $controller "field" "maxUnavailable" "default" 1 "value" $n) }}
{{- end }}
{{- if $c.lockTtl }}
{{- /* kured's TTL counts from when the lock was taken; nodepatch's from the
       holder's last renewal, and the agent refuses one shorter than a drain and a
       reboot may take: such a TTL is raised to that. */}}
{{- $ttl := "0s" }}
{{- if gt (get $ns "lockTtl") 0 }}
{{- $least := add (include "nodepatch.goNanoseconds" $a.drain.timeout | atoi) (include "nodepatch.goNanoseconds" $a.reboot.timeout | atoi) }}
{{- $ttl = ternary (toString $c.lockTtl) (include "nodepatch.goDuration" $least) (ge (get $ns "lockTtl") $least) }}
{{- end }}
{{- include "nodepatch.kuredTake" (dict "key" "lockTtl" "path" "agent.lockTTL" "into" $a "field" "lockTTL" "default" "0s" "value" $ttl) }}
{{- end }}
{{- if gt (get $ns "lockReleaseDelay") 0 }}
{{- /* nodepatch's soak; it must stay shorter than the health timeout, which is
       raised when it is the chart's. */}}
{{- include "nodepatch.kuredTake" (dict "key" "lockReleaseDelay" "path" "agent.health.soak" "into" $a.health "field" "soak" "default" "0s" "value" (toString $c.lockReleaseDelay)) }}
{{- if and (eq (toString $a.health.timeout) "10m") (ge (get $ns "lockReleaseDelay") 600000000000) }}
{{- $_ := set $a.health "timeout" (include "nodepatch.goDuration" (add (get $ns "lockReleaseDelay") 600000000000)) }}
{{- end }}
{{- end }}
{{- with $c.lockAnnotation }}
{{- include "nodepatch.kuredTake" (dict "key" "lockAnnotation" "path" "agent.blockers.kured.lockAnnotation" "into" $a.blockers.kured "field" "lockAnnotation" "default" "weave.works/kured-node-lock" "value" .) }}
{{- end }}

{{- /* What holds a reboot back. */}}
{{- with $c.blockingPodSelector }}
{{- include "nodepatch.kuredTake" (dict "key" "blockingPodSelector" "path" "agent.blockers.podSelectors" "into" $a.blockers "field" "podSelectors" "default" list "value" (uniq .)) }}
{{- end }}
{{- with $c.prometheusUrl }}
{{- include "nodepatch.kuredTake" (dict "key" "prometheusUrl" "path" "agent.blockers.prometheus.url" "into" $a.blockers.prometheus "field" "url" "default" "" "value" .) }}
{{- end }}
{{- /* kured uses the alert filters only with a Prometheus, and ignores them
       without one; nodepatch refuses them without one. */}}
{{- if $a.blockers.prometheus.url }}
{{- with $c.alertFilterRegexp }}
{{- include "nodepatch.kuredTake" (dict "key" "alertFilterRegexp" "path" "agent.blockers.prometheus.alertFilterRegexp" "into" $a.blockers.prometheus "field" "alertFilterRegexp" "default" "" "value" .) }}
{{- end }}
{{- if $c.alertFilterMatchOnly }}
{{- include "nodepatch.kuredTake" (dict "key" "alertFilterMatchOnly" "path" "agent.blockers.prometheus.alertFilterMatchOnly" "into" $a.blockers.prometheus "field" "alertFilterMatchOnly" "default" false "value" true) }}
{{- end }}
{{- if $c.alertFiringOnly }}
{{- include "nodepatch.kuredTake" (dict "key" "alertFiringOnly" "path" "agent.blockers.prometheus.alertFiringOnly" "into" $a.blockers.prometheus "field" "alertFiringOnly" "default" false "value" true) }}
{{- end }}
{{- end }}

{{- /* Notifications. kured strips one pair of quotes around its URL, and turns a
       Slack hook URL (https://hooks.slack.com/services/A/B/C) into slack://A/B/C
       when no --notify-url is set. */}}
{{- $notifyKey := "notifyUrl" }}
{{- $url := $c.notifyUrl | default "" }}
{{- if and (gt (len $url) 2) (has (substr 0 1 $url) (list "\"" "'")) (eq (substr 0 1 $url) (substr (int (sub (len $url) 1)) (len $url) $url)) }}
{{- $url = substr 1 (int (sub (len $url) 1)) $url }}
{{- end }}
{{- if and (not $url) $c.slackHookUrl }}
{{- $notifyKey = "slackHookUrl" }}
{{- $url = printf "slack://%s" (replace "/services/" "" (urlParse $c.slackHookUrl).path) }}
{{- end }}
{{- if $url }}
{{- include "nodepatch.kuredTake" (dict "key" $notifyKey "path" "agent.notify.urls" "into" $a.notify "field" "urls" "default" list "value" (list $url)) }}
{{- end }}
{{- range $key, $field := dict "messageTemplateDrain" "drain" "messageTemplateReboot" "reboot" "messageTemplateUncordon" "uncordon" }}
{{- with get $c $key }}
{{- $default := get (dict "drain" "Draining node %s" "reboot" "Rebooting node %s" "uncordon" "Node %s rebooted & uncordoned successfully!") $field }}
{{- include "nodepatch.kuredTake" (dict "key" $key "path" (printf "agent.notify.messageTemplates.%s" $field) "into" $a.notify.messageTemplates "field" $field "default" $default "value" .) }}
{{- end }}
{{- end }}

{{- /* Reporting. */}}
{{- with $c.metricsPort }}
{{- include "nodepatch.kuredTake" (dict "key" "metricsPort" "path" "metrics.port" "into" $metrics "field" "port" "default" 8080 "value" (int .)) }}
{{- end }}
{{- with $c.metricsHost }}
{{- fail (printf "configuration.metricsHost %q has no nodepatch equivalent: the chart serves metrics on every address of the pod (its probes and Service need that). Remove it (docs/migrating-from-kured.md)" .) }}
{{- end }}
{{- with $c.logFormat }}
{{- include "nodepatch.kuredTake" (dict "key" "logFormat" "path" "agent.logFormat" "into" $a "field" "logFormat" "default" "text" "value" .) }}
{{- end }}
{{- /* slackChannel, slackUsername, annotateNodes and preferNoScheduleTaint are
       accepted and have no effect: values.schema.json says why for each. */}}
{{- $_ := set $out "agent" $a }}
{{- $_ := set $out "metrics" $metrics }}
{{- $_ := set $out "controller" $controller }}
{{- end }}

{{/*
nodepatch.kuredTake puts .value, converted from configuration.<.key>, at .field
of .into (the value .path), unless the user set that value to something else
than its default .default: then both were set, and the render fails naming them.
*/}}
{{- define "nodepatch.kuredTake" -}}
{{- $user := get .into .field }}
{{- if and (ne (toJson $user) (toJson .default)) (ne (toJson $user) (toJson .value)) }}
{{- fail (printf "configuration.%s (a kured chart value) sets %s to %s, but %s is set to %s: set one of them (docs/migrating-from-kured.md)" .key .path (toJson .value) .path (toJson $user)) }}
{{- end }}
{{- $_ := set .into .field .value }}
{{- end }}

{{/* nodepatch.kuredInt: an integer kured's chart takes as a number or a string of digits. */}}
{{- define "nodepatch.kuredInt" -}}
{{- if kindIs "string" . }}{{ atoi . }}{{ else }}{{ int . }}{{ end }}
{{- end }}

{{/*
nodepatch.kuredMinutes: a time of day as kured reads it (the first of Go's
layouts 15:04, 15:04:05, 03:04pm, 15, 03pm, 3pm that parses .value) as minutes
after midnight, seconds rounded up to the next minute. Fails on a time kured
refuses (kured exits on it), naming configuration.<.key>.
*/}}
{{- define "nodepatch.kuredMinutes" -}}
{{- $v := toString .value }}
{{- $h := -1 }}{{ $m := 0 }}{{ $s := 0 }}
{{- if regexMatch "^[0-9]{1,2}(:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?$" $v }}
{{- /* Go's time.Parse takes a fraction after the seconds even where the layout
       has none; kured's window counts whole seconds, so it is dropped. */}}
{{- $p := splitList ":" (regexReplaceAll "[.,][0-9]+$" $v "") }}
{{- $h = index $p 0 | atoi }}
{{- if gt (len $p) 1 }}{{ $m = index $p 1 | atoi }}{{ end }}
{{- if gt (len $p) 2 }}{{ $s = index $p 2 | atoi }}{{ end }}
{{- if gt $h 23 }}{{ $h = -1 }}{{ end }}
{{- else if regexMatch "^([0-9]{2}:[0-9]{2}|[0-9]{1,2})(am|pm)$" $v }}
{{- $p := splitList ":" (substr 0 (int (sub (len $v) 2)) $v) }}
{{- $h = index $p 0 | atoi }}
{{- if gt (len $p) 1 }}{{ $m = index $p 1 | atoi }}{{ end }}
{{- if gt $h 12 }}{{ $h = -1 }}
{{- else if and (hasSuffix "pm" $v) (lt $h 12) }}{{ $h = add $h 12 }}
{{- else if and (hasSuffix "am" $v) (eq $h 12) }}{{ $h = 0 }}
{{- end }}
{{- end }}
{{- if or (lt $h 0) (gt $m 59) (gt $s 59) }}
{{- fail (printf "configuration.%s %q is not a time of day kured reads (15:04, 15:04:05, 03:04pm, 15, 03pm or 3pm; kured exits on it)" .key $v) }}
{{- end }}
{{- add (mul $h 60) $m (ternary 1 0 (gt $s 0)) }}
{{- end }}

{{/*
nodepatch.goDuration writes a number of nanoseconds as a Go duration the agent
and the schema read: hours, minutes and seconds without zero parts (25m, 1h5s),
or nanoseconds when not whole seconds.
*/}}
{{- define "nodepatch.goDuration" -}}
{{- $n := int64 . }}
{{- if mod $n 1000000000 }}{{ printf "%dns" $n }}
{{- else }}
{{- $s := div $n 1000000000 }}
{{- $out := "" }}
{{- if ge $s 3600 }}{{ $out = printf "%dh" (div $s 3600) }}{{ end }}
{{- if mod (div $s 60) 60 }}{{ $out = printf "%s%dm" $out (mod (div $s 60) 60) }}{{ end }}
{{- if mod $s 60 }}{{ $out = printf "%s%ds" $out (mod $s 60) }}{{ end }}
{{- $out | default "0s" }}
{{- end }}
{{- end }}
