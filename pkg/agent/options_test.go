package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func validOptions() Options {
	return Options{NodeName: "node-1", Namespace: "nodepatch", LockName: "nodepatch-lock", Concurrency: 1,
		Period: time.Minute, SentinelFile: "/var/run/reboot-required", BootIDFile: "/proc/sys/kernel/random/boot_id",
		RebootMethod: "systemd", RebootTimeout: time.Minute, DrainTimeout: time.Minute, DrainGracePeriod: -1,
		DrainRetryBackoff: time.Minute, RebootDays: "mon", StartTime: "22:00", EndTime: "04:00", TimeZone: "Europe/Berlin",
		MetricsAddress: ":8080", LogFormat: "text", HostRoot: "/", HostExec: "systemd", Patch: "security",
		PatchInterval: time.Hour, PatchTimeout: time.Minute}
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
