package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"
)

func validOptions() Options {
	return Options{NodeName: "node-1", Namespace: "nodepatch", LockName: "nodepatch-lock", Concurrency: 1, Admission: "none",
		Period: time.Minute, SentinelFile: "/var/run/reboot-required", BootIDFile: "/proc/sys/kernel/random/boot_id",
		RebootMethod: "systemd", RebootTimeout: time.Minute, DrainTimeout: time.Minute, DrainGracePeriod: -1,
		DrainRetryBackoff: time.Minute, RebootDays: "mon", StartTime: "22:00", EndTime: "04:00", TimeZone: "Europe/Berlin",
		MetricsAddress: ":8080", LogFormat: "text", HostRoot: "/", HostExec: "systemd", Patch: "security",
		PatchInterval: time.Hour, PatchTimeout: time.Minute, MinRebootInterval: time.Hour, MaxRepeatedReboots: 3,
		DeleteEmptyDirData: true, DrainTimeoutAction: "retry", ForceDrainGrace: 30, ExcludeFromLB: true,
		Checks: CheckOptions{HealthDaemonSets: true, HealthTimeout: 10 * time.Minute, KuredLockAnnotation: "weave.works/kured-node-lock"}}
}

// TestValidateChecks: every check flag's bad value is named, and Prometheus
// features need a server to ask.
func TestValidateChecks(t *testing.T) {
	o := validOptions()
	o.Checks.BlockingPodSelectors = []string{"app=db", "", "tier in ("}
	o.Checks.ReadyPodSelector = "!="
	o.Checks.AlertFilterRegexp, o.Checks.BlockWhileQuery, o.Checks.HealthQuery = "Watchdog", "up == 0", "up"
	o.Checks.KuredDaemonSet = "kube-system"
	o.Checks.Soak = 20 * time.Minute
	_, err := o.Validate()
	for _, want := range []string{`--blocking-pod-selector "": an empty selector`, `--blocking-pod-selector "tier in ("`,
		`--ready-pod-selector "!="`, `--alert-filter-regexp "Watchdog": needs --prometheus-url`,
		`--block-while-query "up == 0": needs --prometheus-url`, `--health-query "up": needs --prometheus-url`,
		`--kured-daemonset "kube-system": want NAMESPACE/NAME`, `--soak "20m0s": not shorter than --health-timeout (10m0s)`} {
		require.ErrorContains(t, err, want)
	}
	o = validOptions()
	o.Checks.HealthTimeout = 0
	_, err = o.Validate()
	require.ErrorContains(t, err, `--health-timeout "0s": want a positive duration`)
	o = validOptions()
	o.Checks.KuredDaemonSet, o.Checks.KuredLockAnnotation = "kube-system/kured", "not a/valid key"
	_, err = o.Validate()
	require.ErrorContains(t, err, `--kured-lock-annotation "not a/valid key"`)
}

func TestValidateNamesEveryBadValue(t *testing.T) {
	_, err := validOptions().Validate()
	require.NoError(t, err)

	o := validOptions()
	o.NodeName, o.Concurrency, o.RebootMethod, o.Patch, o.DrainPodSelector, o.HostRoot = "Node_1", 0, "kexec", "most", "app in (", "host"
	o.LockTTL, o.DrainTimeout = -time.Second, 0
	_, err = o.Validate()
	require.Error(t, err)
	for _, want := range []string{`--node-name "Node_1"`, `--concurrency "0"`, `--reboot-method "kexec"`, `--patch "most"`,
		`--drain-pod-selector "app in ("`, `--host-root "host"`, `--lock-ttl "-1s"`, `--drain-timeout "0s"`} {
		require.Contains(t, err.Error(), want)
	}
}

// TestLockTTLMustOutlastDrainAndReboot: a slot must not expire while its node
// drains or reboots, when it cannot renew.
func TestLockTTLMustOutlastDrainAndReboot(t *testing.T) {
	o := validOptions()
	o.LockTTL = 90 * time.Second // drain 1m + reboot 1m
	_, err := o.Validate()
	require.ErrorContains(t, err, `--lock-ttl "1m30s": shorter than --drain-timeout + --reboot-timeout (2m0s)`)
	o.LockTTL = 2 * time.Minute
	_, err = o.Validate()
	require.NoError(t, err)

	o = validOptions()
	o.MaxRepeatedReboots, o.MinRebootInterval, o.ConfigGeneration = 0, -time.Second, -1
	_, err = o.Validate()
	for _, want := range []string{`--max-repeated-reboots "0"`, `--min-reboot-interval "-1s"`, `--config-generation "-1"`} {
		require.ErrorContains(t, err, want)
	}
}

// FuzzValidate: whatever the operator types, validation does not panic, and
// every complaint starts with the flag it is about.
func FuzzValidate(f *testing.F) {
	f.Add("node-1", "mon,fri", "22:00", "04:00", "UTC", "systemd", "", "security", "app=x", 2)
	f.Add("", "", "", "", "", "", "", "", "", 0)
	f.Add("Ä", "mnday", "25:61", "-1", "Mars/Olympus", "command", " ", "sometimes", "in (", -5)
	f.Fuzz(func(t *testing.T, node, days, start, end, zone, method, command, patch, selector string, concurrency int) {
		o := validOptions()
		o.NodeName, o.RebootDays, o.StartTime, o.EndTime, o.TimeZone = node, days, start, end, zone
		o.RebootMethod, o.RebootCommand, o.Patch, o.DrainPodSelector, o.Concurrency = method, command, patch, selector, concurrency
		_, err := o.Validate()
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			require.True(t, strings.HasPrefix(line, "--"), "an error line does not name its flag: %q", line)
		}
	})
}

func TestValidateCyclePolicy(t *testing.T) {
	o := validOptions()
	o.DrainTimeoutAction, o.ForceDrainGrace, o.SkipWaitForDeleteTimeout = "panic", -1, -5
	o.DrainDelay, o.LockReleaseDelay, o.Checks.Soak = -time.Second, time.Minute, time.Minute
	o.PreRebootNodeLabels = []string{"status=rebooting", "nope"}
	o.PostRebootNodeLabels = []string{"nodepatch.io/phase=x", "a=" + strings.Repeat("v", 64)}
	_, err := o.Validate()
	for _, want := range []string{`--drain-timeout-action "panic": want retry, quarantine or force`,
		`--force-drain-grace-period "-1"`, `--skip-wait-for-delete-timeout "-5"`, `--drain-delay "-1s"`,
		`--lock-release-delay "1m0s": kured's name for --soak: set one of them`,
		`--pre-reboot-node-labels "status=rebooting,nope": "nope": want KEY=VALUE`,
		`--post-reboot-node-labels "nodepatch.io/phase=x,a=`} {
		require.ErrorContains(t, err, want)
	}
	o = validOptions()
	o.LockReleaseDelay = 15 * time.Minute
	_, err = o.Validate()
	require.ErrorContains(t, err, `--soak "15m0s": not shorter than --health-timeout (10m0s)`)
}

func TestParseNodeLabels(t *testing.T) {
	got, err := ParseNodeLabels([]string{"status=rebooting", "example.com/maint=", "x=y"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"status": "rebooting", "example.com/maint": "", "x": "y"}, got)
	for _, bad := range []string{"=v", "a b=c", "k=v v", "node.kubernetes.io/exclude-from-external-load-balancers=true", "nodepatch.io/x=1"} {
		_, err := ParseNodeLabels([]string{bad})
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), bad)
	}
}

// FuzzParseNodeLabels: a list that parses gives labels the API server takes.
func FuzzParseNodeLabels(f *testing.F) {
	f.Add("status=rebooting")
	f.Add("a=b=c")
	f.Add("example.com/x=y")
	f.Fuzz(func(t *testing.T, kv string) {
		got, err := ParseNodeLabels([]string{kv})
		if err != nil {
			return
		}
		for k, v := range got {
			require.Empty(t, validation.IsQualifiedName(k))
			require.Empty(t, validation.IsValidLabelValue(v))
		}
	})
}

func TestValidateSchedule(t *testing.T) {
	o := validOptions()
	o.RebootDays, o.StartTime, o.EndTime, o.TimeZone = DefaultRebootDays, DefaultStartTime, DefaultEndTime, DefaultTimeZone
	o.Windows = []string{"mon-fri 22:00-04:00 Europe/Berlin", `cron "0 2 * * sat" 4h UTC`}
	o.Blackouts = []string{"2026-12-24..2027-01-02 Europe/Berlin"}
	sched, err := o.Validate()
	require.NoError(t, err)
	christmas := time.Date(2026, 12, 28, 23, 0, 0, 0, time.UTC)
	require.False(t, sched.Open(christmas), "open in a blackout")
	require.True(t, sched.Open(time.Date(2027, 1, 4, 22, 30, 0, 0, time.UTC)), "a Monday night in Berlin")

	o.StartTime = "20:00"
	_, err = o.Validate()
	require.ErrorContains(t, err, "set either --window or --reboot-days/--start-time/--end-time/--time-zone, not both")

	o = validOptions()
	o.Blackouts = []string{"christmas"}
	_, err = o.Validate()
	require.ErrorContains(t, err, `--blackout "christmas"`)
	o = validOptions()
	o.RebootDays, o.StartTime, o.EndTime, o.TimeZone = DefaultRebootDays, DefaultStartTime, DefaultEndTime, DefaultTimeZone
	o.Windows = []string{"someday 25:00-26:00"}
	_, err = o.Validate()
	require.ErrorContains(t, err, `--window "someday 25:00-26:00"`)
}
