{{/*
nodepatch.alertRules: the Prometheus rule groups of nodepatch, as a rule file's
body. The PrometheusRule's spec and the plain rule file
(manifests/prometheus/nodepatch-alerts.rules.yaml) are both this template's
output, so promtool tests the exact rules the chart installs.
Every agent series carries node=<node name>; aggregating "by (node)" keeps one
alert per node across agent pod restarts.
*/}}
{{- define "nodepatch.alertRules" -}}
{{- $al := .Values.alerts }}
{{- $job := include "nodepatch.job" . }}
{{- $sel := printf "job=%q" $job }}
{{- $runbook := trimSuffix "/" $al.runbookBaseURL }}
{{- $ctlSel := printf "job=%q" (printf "%s-controller" $job) }}
{{- /* the rule file starts here */ -}}
groups:
  - name: nodepatch
    rules:
      {{- with $al.rebootPending }}
      {{- if .enabled }}
      - alert: NodepatchRebootPending
        expr: max by (node) (nodepatch_reboot_required{ {{- $sel -}} }) == 1
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "Node {{ $labels.node }} has needed a reboot for more than %s." .for | quote }}
          description: {{ printf "The host behind node {{ $labels.node }} reports that it needs a reboot (sentinel file or command) and nodepatch has not rebooted it for %s. Look for a blocked, paused or failing node first." .for | quote }}
          runbook_url: {{ printf "%s#nodepatchrebootpending" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.rebootBlocked }}
      {{- if .enabled }}
      - alert: NodepatchRebootBlocked
        expr: max by (node, reason) (nodepatch_reboot_blocked{ {{- $sel }}, reason=~{{ join "|" .reasons | quote }}}) == 1
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "The reboot of node {{ $labels.node }} has been blocked ({{ $labels.reason }}) for more than %s." .for | quote }}
          description: {{ printf "Node {{ $labels.node }} wants a reboot, but nodepatch holds it back because of {{ $labels.reason }} (annotation: nodepatch.io/block-reboot on the Node; paused: nodepatch.io/pause on the lock Lease; window: outside the reboot window; backoff: waiting after a failed drain), and has for %s." .for | quote }}
          runbook_url: {{ printf "%s#nodepatchrebootblocked" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.nodeHeld }}
      {{- if .enabled }}
      - alert: NodepatchNodeHeld
        expr: |-
          (
            time() - max by (node) (nodepatch_cycle_start_timestamp_seconds{ {{- $sel -}} }) > {{ include "nodepatch.seconds" .threshold }}
            and on (node)
            max by (node) (nodepatch_cycle_start_timestamp_seconds{ {{- $sel -}} }) > 0
          )
          or on (node)
          (
            max by (node) (nodepatch_lock_held{ {{- $sel -}} }) == 1
            unless on (node)
            max by (node) (nodepatch_cycle_start_timestamp_seconds{ {{- $sel -}} }) > 0
          )
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "Node {{ $labels.node }} has been held in a reboot cycle for more than %s, or holds a lock slot outside a cycle." .threshold | quote }}
          description: {{ printf "Node {{ $labels.node }} started a reboot cycle more than %s ago and has not finished it (it is tainted, cordoned or rebooting, and keeps a lock slot that other nodes wait for), or it has held a lock slot without a cycle for %s." .threshold .for | quote }}
          runbook_url: {{ printf "%s#nodepatchnodeheld" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.rebootFailed }}
      {{- if .enabled }}
      - alert: NodepatchRebootFailed
        expr: |-
          sum by (node) (increase(nodepatch_reboots_total{ {{- $sel -}} , result="failed"}[{{ .window }}])) > 0
          or on (node)
          max by (node) (nodepatch_phase{ {{- $sel -}} , phase="Failed"}) == 1
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "A reboot of node {{`{{ $labels.node }}`}} failed."
          description: {{ printf "A reboot of node {{ $labels.node }} failed within the last %s (the boot id did not change in time, or the node did not come back Ready), or the node is in phase Failed, where nodepatch leaves it cordoned until an operator looks." .window | quote }}
          runbook_url: {{ printf "%s#nodepatchrebootfailed" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.patchFailed }}
      {{- if .enabled }}
      - alert: NodepatchPatchFailed
        expr: |-
          max by (node) (nodepatch_patch_last_success{ {{- $sel -}} }) == 0
          and on (node)
          max by (node) (nodepatch_patch_last_run_timestamp_seconds{ {{- $sel -}} }) > 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "Patching node {{`{{ $labels.node }}`}} failed."
          description: {{ printf "The last package upgrade run on node {{ $labels.node }} failed and none has succeeded since (for %s). The node keeps running its old packages." .for | quote }}
          runbook_url: {{ printf "%s#nodepatchpatchfailed" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.agentDown }}
      {{- if .enabled }}
      - alert: NodepatchAgentDown
        expr: up{ {{- $sel -}} } == 0 or absent(up{ {{- $sel -}} })
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "{{ if $labels.instance }}The nodepatch agent {{ $labels.instance }} has not{{ else }}No nodepatch agent has{{ end }} been scraped for %s." .for | quote }}
          description: {{ printf "{{ if $labels.instance }}Prometheus cannot scrape the nodepatch agent {{ $labels.instance }} (job %s): its node is neither patched nor rebooted, and a cycle it started does not finish.{{ else }}Prometheus has no target of job %s: no node is patched or rebooted. The agents are not running, or Prometheus does not discover them.{{ end }}" $job $job | quote }}
          runbook_url: {{ printf "%s#nodepatchagentdown" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.rebootLoop }}
      {{- if .enabled }}
      - alert: NodepatchRebootLoop
        expr: max by (node, reason) (nodepatch_reboot_blocked{ {{- $sel -}} , reason=~"recent-reboot|reboot-loop"}) == 1
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "Node {{`{{ $labels.node }}`}} still asks for a reboot right after one ({{`{{ $labels.reason }}`}})."
          description: "The host behind node {{`{{ $labels.node }}`}} still reported that it needs a reboot on the first look after a verified reboot: the reboot does not clear the need (a sentinel on persistent storage, a bootloader booting the old kernel, a command that always says yes). recent-reboot: the next reboot waits --min-reboot-interval; reboot-loop: it is held until an operator looks."
          runbook_url: {{ printf "%s#nodepatchrebootloop" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.nodeQuarantined }}
      {{- if .enabled }}
      - alert: NodepatchNodeQuarantined
        expr: max by (node) (nodepatch_reboot_blocked{ {{- $sel -}} , reason="quarantined"}) == 1
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "Node {{`{{ $labels.node }}`}} is quarantined: a drain of it did not finish in time."
          description: "A drain of node {{`{{ $labels.node }}`}} ran out of --drain-timeout and, with --drain-timeout-action=quarantine, nodepatch undid the cycle (uncordoned the node, gave back its slot) and labelled it nodepatch.io/quarantined. The node needs a reboot, but no cycle starts on it until an operator removes the label."
          runbook_url: {{ printf "%s#nodepatchnodequarantined" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.healthGateFailed }}
      {{- if .enabled }}
      - alert: NodepatchHealthGateFailed
        expr: sum by (node) (increase(nodepatch_reboots_total{ {{- $sel -}} , result="unhealthy"}[{{ .window }}])) > 0
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "Node {{`{{ $labels.node }}`}} did not turn healthy after its reboot."
          description: {{ printf "Within the last %s, node {{ $labels.node }} came back from its reboot but did not pass the health gate (its DaemonSet pods and the pods of --ready-pod-selector Ready, --health-query true, --soak over) within --health-timeout. It is in service, but in phase Failed and keeping its lock slot, so the rollout stops until an operator looks." .window | quote }}
          runbook_url: {{ printf "%s#nodepatchhealthgatefailed" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- if .Values.controller.enabled }}
      {{- with $al.controllerDown }}
      {{- if .enabled }}
      - alert: NodepatchControllerDown
        expr: max(nodepatch_controller_is_leader{ {{- $ctlSel -}} }) < 1 or absent(nodepatch_controller_is_leader{ {{- $ctlSel -}} })
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "No nodepatch rollout controller has led for %s." .for | quote }}
          description: "No replica of the rollout controller leads (or none is scraped). Cycles under way finish, but no node is admitted to a new one: reboots the hosts ask for wait."
          runbook_url: {{ printf "%s#nodepatchcontrollerdown" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.rolloutStalled }}
      {{- if .enabled }}
      - alert: NodepatchRolloutStalled
        expr: |-
          max(nodepatch_controller_queue_length{ {{- $ctlSel -}} } * on (instance) nodepatch_controller_is_leader{ {{- $ctlSel -}} }) > 0
          and
          sum(increase(nodepatch_controller_admissions_total{ {{- $ctlSel -}} }[{{ .window }}])) == 0
          unless
          max(nodepatch_controller_holds{ {{- $ctlSel -}} , rule="paused"}) > 0
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "Nodes wait for a reboot and none has been admitted for %s." .window | quote }}
          description: {{ printf "The rollout controller has nodes waiting for admission but admitted none within %s, and the rollout is not paused: a node out of service (NotReady, cordoned, or a cycle that does not finish) keeps the limit full, or every waiting node is held by a rule (nodepatch_controller_holds says which)." .window | quote }}
          runbook_url: {{ printf "%s#nodepatchrolloutstalled" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.failureBudgetSpent }}
      {{- if .enabled }}
      - alert: NodepatchFailureBudgetSpent
        expr: sum(increase(nodepatch_controller_failure_budget_trips_total{ {{- $ctlSel -}} }[{{ .window }}])) > 0
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: "The failure budget paused the rollout."
          description: "Too many reboot cycles failed within the failure budget's window: the rollout controller paused the rollout (nodepatch.io/pause on the lock's header Lease names the failed nodes). Nothing more reboots until an operator resumes it."
          runbook_url: {{ printf "%s#nodepatchfailurebudgetspent" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- with $al.poolsInvalid }}
      {{- if .enabled }}
      - alert: NodepatchPoolsInvalid
        expr: max(nodepatch_controller_pools_valid{ {{- $ctlSel -}} } == 0 and on (instance) nodepatch_controller_is_leader{ {{- $ctlSel -}} } == 1) == 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "The rollout controller has ignored a bad pools ConfigMap for %s." .for | quote }}
          description: "The pools ConfigMap the leading controller watches has an edit it cannot use: it keeps the last good pools (the PoolsInvalid Event and `nodepatch status` name the bad key and value). Later edits to the pools do not take effect until it is fixed."
          runbook_url: {{ printf "%s#nodepatchpoolsinvalid" $runbook | quote }}
      {{- end }}
      {{- end }}
      {{- end }}
      {{- with $al.bootIDMismatch }}
      {{- if .enabled }}
      - alert: NodepatchBootIDMismatch
        expr: max by (node, host_boot_id, kubelet_boot_id) (nodepatch_boot_id_mismatch{ {{- $sel -}} }) == 1
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
          {{- with $al.labels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          summary: {{ printf "The nodepatch agent on node {{ $labels.node }} reads a boot id the kubelet does not report, for %s." .for | quote }}
          description: "The agent on node {{`{{ $labels.node }}`}} reads boot id {{`{{ $labels.host_boot_id }}`}} while the kubelet reports {{`{{ $labels.kubelet_boot_id }}`}}. It cannot tell whether the node rebooted, so it does nothing on this node: no patch, no cycle, no uncordon."
          runbook_url: {{ printf "%s#nodepatchbootidmismatch" $runbook | quote }}
      {{- end }}
      {{- end }}
{{- end }}
