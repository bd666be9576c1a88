package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodepatch/nodepatch/pkg/agent"
	"github.com/nodepatch/nodepatch/pkg/notify"
	"github.com/nodepatch/nodepatch/pkg/state"
)

func newAgentCommand() *cobra.Command {
	o := agent.Options{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the per-node agent (the DaemonSet's container)",
		Long: "Run the per-node agent. Every flag can also be set with an environment variable\n" +
			"NODEPATCH_<FLAG> (for --drain-timeout: NODEPATCH_DRAIN_TIMEOUT); the command line wins.",
		Args:    cobra.NoArgs,
		PreRunE: envThenValidate(func() error { _, err := o.Validate(); return err }),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return agent.Start(cmd.Context(), o, newLogger(o.LogFormat))
		},
	}
	bindAgentFlags(cmd.Flags(), &o)
	return cmd
}

func bindAgentFlags(f *pflag.FlagSet, o *agent.Options) {
	f.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	f.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the lock's Leases (default $POD_NAMESPACE)")
	f.StringVar(&o.LockName, "lock-name", "nodepatch-lock", "name of the lock: header Lease NAME, slots NAME-0 … NAME-(concurrency-1)")
	f.IntVar(&o.Concurrency, "concurrency", 1, "how many nodes may be in a reboot cycle at once (a rollout controller sets the limit instead)")
	f.StringVar(&o.Admission, "admission", "none", "none: take a free slot when one comes; controller: report the need and wait for the rollout controller's admission first")
	f.DurationVar(&o.Period, "period", time.Minute, "how often the host is asked whether it needs a reboot (jittered ±10%)")
	f.DurationVar(&o.LockTTL, "lock-ttl", 0, "take a slot from a holder that has not renewed it for this long; 0 never does (a node that did not come back halts the rollout)")

	f.StringVar(&o.SentinelFile, "sentinel-file", "/var/run/reboot-required", "host file whose existence means a reboot is needed (resolved inside --host-root)")
	f.StringVar(&o.SentinelCommand, "sentinel-command", "", "host command (/bin/sh -c) whose exit status 0 means a reboot is needed")
	f.StringVar(&o.BootIDFile, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding the kernel's boot id")
	f.StringVar(&o.RebootMethod, "reboot-method", "systemd", "how to reboot: systemd (reboot.target over D-Bus) or command")
	f.StringVar(&o.RebootCommand, "reboot-command", "", "host command (/bin/sh -c) that reboots, with --reboot-method=command")
	f.DurationVar(&o.RebootTimeout, "reboot-timeout", 10*time.Minute, "a boot id unchanged this long after a reboot request means the reboot did not happen")
	f.DurationVar(&o.MinRebootInterval, "min-reboot-interval", time.Hour, "when the host still asks for a reboot right after one, wait this long before the next (a reboot loop)")
	f.IntVar(&o.MaxRepeatedReboots, "max-repeated-reboots", 3, "halt a node after this many reboots in a row that each left the host still asking for one")

	f.DurationVar(&o.DrainTimeout, "drain-timeout", 10*time.Minute, "give up a drain after this long: undo the cordon, release the lock, retry later")
	f.IntVar(&o.DrainGracePeriod, "drain-grace-period", -1, "seconds each evicted pod gets to stop; -1 uses the pod's own")
	f.StringVar(&o.DrainPodSelector, "drain-pod-selector", "", "evict only pods matching this label selector")
	f.DurationVar(&o.DrainRetryBackoff, "drain-retry-backoff", time.Minute, "wait after a failed drain; doubles with each further failure, up to an hour")
	f.BoolVar(&o.RebootAfterDrainTimeout, "reboot-after-drain-timeout", false, "reboot even when the drain timed out (PodDisruptionBudgets may then be broken)")

	f.StringVar(&o.RebootDays, "reboot-days", agent.DefaultRebootDays, "days a reboot may start on")
	f.StringVar(&o.StartTime, "start-time", agent.DefaultStartTime, "start of the daily maintenance window (HH:MM)")
	f.StringVar(&o.EndTime, "end-time", agent.DefaultEndTime, "end of the daily maintenance window (HH:MM); before --start-time wraps past midnight")
	f.StringVar(&o.TimeZone, "time-zone", agent.DefaultTimeZone, "time zone of the maintenance window (IANA name)")
	f.StringArrayVar(&o.Windows, "window", nil, `maintenance window, repeatable (any open one lets a cycle start): "mon-fri 22:00-04:00 Europe/Berlin" `+
		`or 'cron "0 2 * * sat" 4h UTC'; replaces --reboot-days/--start-time/--end-time/--time-zone`)
	f.StringArrayVar(&o.Blackouts, "blackout", nil, `no cycle starts in it, repeatable: "2026-12-24", "2026-12-24..2027-01-02 Europe/Berlin" or RFC 3339 FROM..UNTIL`)

	f.StringVar(&o.MetricsAddress, "metrics-address", ":8080", "address serving /metrics, /healthz and /readyz")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&o.DryRun, "dry-run", false, "walk the whole decision path and say what would be done; change nothing and reboot nothing")

	f.StringVar(&o.HostRoot, "host-root", "/", "where the host's / is seen, for sentinel paths and --host-exec=direct")
	f.StringVar(&o.HostExec, "host-exec", "systemd", "how host commands run: systemd (transient units over D-Bus) or direct (local processes)")
	f.StringVar(&o.DBusAddress, "dbus-address", "", "D-Bus system bus address (default $DBUS_SYSTEM_BUS_ADDRESS, else the system bus)")
	f.StringVar(&o.OutputDir, "output-dir", "/var/lib/nodepatch", "host folder where host commands' output is written (shared with the agent)")

	f.StringVar(&o.Patch, "patch", "security", "which package updates to apply: off, security or all")
	f.DurationVar(&o.PatchInterval, "patch-interval", 24*time.Hour, "how often to look for and apply package updates")
	f.DurationVar(&o.PatchTimeout, "patch-timeout", 30*time.Minute, "bound on one package manager run")
	f.StringSliceVar(&o.PatchExclude, "patch-exclude", agent.DefaultPatchExclude, "packages never upgraded (Kubernetes runtime packages by default)")
	f.BoolVar(&o.PatchUnderLock, "patch-under-lock", false, "take a lock slot and drain before applying updates (for hosts where upgrades restart services)")

	bindCheckFlags(f, &o.Checks)
	bindCycleFlags(f, o)
	notify.BindFlags(f, &o.Notify)
	f.DurationVar(&o.NotifyBlockedAfter, "notify-blocked-after", time.Hour, "notify (blocked-long) when a needed cycle has been held this long; 0 never")

	f.Int64Var(&o.ConfigGeneration, "config-generation", 0, "generation of this configuration (the chart sets the DaemonSet's pod-template-generation): the newest generation's --concurrency is the cluster's limit")

	f.DurationVar(&o.ClockSkew, "clock-skew", 0, "shift the agent's clock by this much (for fault tests)")
	_ = f.MarkHidden("clock-skew")
}

func newLogger(format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// bindCheckFlags binds the holds from outside the node (kured's flag names) and
// the health gate after the reboot.
func bindCheckFlags(f *pflag.FlagSet, c *agent.CheckOptions) {
	f.StringArrayVar(&c.BlockingPodSelectors, "blocking-pod-selector", nil, "label selector: matching pods on this node hold the reboot (repeatable; finished pods do not hold)")
	f.StringVar(&c.PrometheusURL, "prometheus-url", "", "Prometheus to ask before a cycle starts: firing alerts hold it (see --alert-*)")
	f.DurationVar(&c.PrometheusTimeout, "prometheus-timeout", 10*time.Second, "bound on each request to Prometheus")
	f.StringVar(&c.AlertFilterRegexp, "alert-filter-regexp", "", "alerts whose name matches are ignored (with --alert-filter-match-only: only they hold)")
	f.BoolVar(&c.AlertFilterMatchOnly, "alert-filter-match-only", false, "only alerts whose name matches --alert-filter-regexp hold the reboot")
	f.BoolVar(&c.AlertFiringOnly, "alert-firing-only", false, "pending alerts do not hold the reboot, only firing ones")
	f.StringVar(&c.AlertLabelMatchers, "alert-label-matchers", "", `only alerts matching these PromQL matchers hold, e.g. severity="critical",node=~"$NODE" ($NODE: this node's name)`)
	f.StringVar(&c.BlockWhileQuery, "block-while-query", "", "PromQL expression: the reboot waits while it returns any series")
	f.StringVar(&c.KuredDaemonSet, "kured-daemonset", "", "NAMESPACE/NAME of a kured DaemonSet running beside nodepatch: no cycle starts while kured's lock has a holder")
	f.StringVar(&c.KuredLockAnnotation, "kured-lock-annotation", "weave.works/kured-node-lock", "the annotation on kured's DaemonSet that holds its lock (kured's --lock-annotation)")
	f.BoolVar(&c.HealthDaemonSets, "health-daemonsets", true, "after the reboot, keep the slot until the DaemonSet pods on this node are Ready")
	f.StringVar(&c.ReadyPodSelector, "ready-pod-selector", "", "after the reboot, keep the slot until the pods on this node matching this selector are Ready")
	f.StringVar(&c.HealthQuery, "health-query", "", "after the reboot, keep the slot until this PromQL expression returns series, all non-zero")
	f.DurationVar(&c.Soak, "soak", 0, "after the reboot, keep the slot this long after the node is back, and healthy at its end")
	f.DurationVar(&c.HealthTimeout, "health-timeout", 10*time.Minute, "a node not healthy this long after it came back fails its cycle and keeps its slot")
}

// bindCycleFlags binds the drain policy, the delays and the node labels of a
// cycle (kubectl's and kured's flag names).
func bindCycleFlags(f *pflag.FlagSet, o *agent.Options) {
	f.BoolVar(&o.DeleteEmptyDirData, "delete-emptydir-data", true, "evict pods with emptyDir volumes (their data is lost)")
	f.BoolVar(&o.Force, "force", false, "evict pods that no controller manages too (they are gone for good)")
	f.IntVar(&o.SkipWaitForDeleteTimeout, "skip-wait-for-delete-timeout", 0, "do not wait for pods whose deletion is older than this many seconds (0: wait for all)")
	f.StringVar(&o.DrainTimeoutAction, "drain-timeout-action", "retry", "after --drain-timeout: retry (undo, back off, try again), quarantine (undo, label the node "+
		"nodepatch.io/quarantined, skip it until an operator removes the label) or force (delete the pods left past their budgets)")
	f.IntVar(&o.ForceDrainGrace, "force-drain-grace-period", 30, "seconds each pod gets with --drain-timeout-action=force")
	f.DurationVar(&o.DrainDelay, "drain-delay", 0, "wait this long after the cordon before draining")
	f.DurationVar(&o.RebootDelay, "reboot-delay", 0, "wait this long after the drain before rebooting")
	f.DurationVar(&o.LockReleaseDelay, "lock-release-delay", 0, "kured's name for --soak: keep the slot this long after the node is back")
	f.StringArrayVar(&o.Gates, "gate", nil, "NAME@before-drain|before-reboot|after-reboot[,timeout=1h][,on-timeout=abort|fail], repeatable: the cycle waits there "+
		"until the Node carries "+state.ApprovalAnnotation("NAME")+" = this cycle's id (nodepatch approve NODE NAME)")
	f.StringSliceVar(&o.PreRebootNodeLabels, "pre-reboot-node-labels", nil, "KEY=VALUE labels set on the node when its cycle begins")
	f.StringSliceVar(&o.PostRebootNodeLabels, "post-reboot-node-labels", nil, "KEY=VALUE labels set on the node when its cycle ends")
	f.BoolVar(&o.ExcludeFromLB, "exclude-from-load-balancers", true, "label the node "+state.LabelExcludeFromLB+" while it is out (an operator's own label is kept)")
}
