package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/packages"
	"github.com/nodepatch/nodepatch/pkg/host/systemd"
	"github.com/nodepatch/nodepatch/pkg/kube"
	"github.com/nodepatch/nodepatch/pkg/notify"
	"github.com/nodepatch/nodepatch/pkg/reboot"
	"github.com/nodepatch/nodepatch/pkg/schedule"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// Options are the agent's settings, one per flag of `nodepatch agent`
// (and a hook, OnAPIRequest, for in-process worlds).
type Options struct {
	NodeName    string
	Kubeconfig  string
	Namespace   string
	LockName    string
	Concurrency int
	// Admission is "none" (agents take free slots as they come) or
	// "controller" (the rollout controller admits nodes first).
	Admission string
	Period    time.Duration
	LockTTL   time.Duration

	SentinelFile    string
	SentinelCommand string
	BootIDFile      string
	RebootMethod    string
	RebootCommand   string
	RebootTimeout   time.Duration
	// MinRebootInterval and MaxRepeatedReboots hold a node whose reboots do not
	// clear the need (a reboot loop).
	MinRebootInterval  time.Duration
	MaxRepeatedReboots int

	DrainTimeout            time.Duration
	DrainGracePeriod        int
	DrainPodSelector        string
	DrainRetryBackoff       time.Duration
	RebootAfterDrainTimeout bool
	// The drain's policy: kubectl's and kured's flags.
	DeleteEmptyDirData       bool
	Force                    bool
	SkipWaitForDeleteTimeout int
	DrainTimeoutAction       string
	ForceDrainGrace          int
	DrainDelay               time.Duration
	RebootDelay              time.Duration
	LockReleaseDelay         time.Duration

	// Notify are the notification flags (pkg/notify); NotifyBlockedAfter
	// notifies a needed cycle held that long.
	Notify             notify.Config
	NotifyBlockedAfter time.Duration

	// Gates are the --gate values: approvals each cycle waits for.
	Gates []string

	// Node labels of a cycle (kured's flags, and the load balancer exclusion).
	PreRebootNodeLabels  []string
	PostRebootNodeLabels []string
	ExcludeFromLB        bool

	RebootDays string
	StartTime  string
	EndTime    string
	TimeZone   string
	// Windows and Blackouts (--window, --blackout) make the schedule; without
	// windows the four flags above are its one window.
	Windows   []string
	Blackouts []string

	MetricsAddress string
	LogFormat      string
	DryRun         bool

	HostRoot    string
	HostExec    string
	DBusAddress string
	OutputDir   string

	Patch          string
	PatchInterval  time.Duration
	PatchTimeout   time.Duration
	PatchExclude   []string
	PatchUnderLock bool

	// Checks are the holds from outside the node and the health gate.
	Checks CheckOptions

	// ConfigGeneration is the generation of the configuration this agent runs
	// (the DaemonSet's pod-template-generation): the limit of a newer one wins.
	ConfigGeneration int64

	// ClockSkew shifts the agent's clock (hidden flag --clock-skew): fault tests
	// run one agent minutes ahead or behind without touching the machine's clock.
	ClockSkew time.Duration

	// OnAPIRequest, when set, is told of every API request after the agent's
	// own counter (no flag): a world of many in-process agents adds up their
	// requests this way instead of scraping each agent's /metrics.
	OnAPIRequest kube.CountFunc
}

// Clock is the agent's clock: the machine's, shifted by ClockSkew.
func (o Options) Clock() func() time.Time {
	skew := o.ClockSkew
	return func() time.Time { return time.Now().Add(skew) }
}

// DefaultPatchExclude are the Kubernetes runtime packages: they are upgraded with
// the cluster, never behind its back.
var DefaultPatchExclude = []string{"kubelet", "kubeadm", "kubectl", "kubernetes-cni", "cri-tools", "containerd",
	"containerd.io", "cri-o", "docker-ce", "docker-ce-cli", "docker.io", "moby-engine", "runc"}

// The one-window flags' defaults: an always-open window.
const (
	DefaultRebootDays = "mon,tue,wed,thu,fri,sat,sun"
	DefaultStartTime  = "00:00"
	DefaultEndTime    = "24:00"
	DefaultTimeZone   = "UTC"
)

// Validate checks every option and returns the parsed maintenance schedule.
// Each error names the flag and the bad value.
func (o Options) Validate() (schedule.Schedule, error) {
	var errs []error
	bad := func(flag string, value any, why string) {
		errs = append(errs, fmt.Errorf("--%s %q: %s", flag, fmt.Sprint(value), why))
	}
	if msgs := validation.IsDNS1123Subdomain(o.NodeName); o.NodeName == "" || len(msgs) > 0 {
		bad("node-name", o.NodeName, "want the Node's name (set --node-name or NODE_NAME)")
	}
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		bad("namespace", o.Namespace, "want a namespace name (set --namespace or POD_NAMESPACE)")
	}
	if msgs := validation.IsDNS1123Subdomain(o.LockName); len(msgs) > 0 {
		bad("lock-name", o.LockName, strings.Join(msgs, "; "))
	}
	if o.Admission != "none" && o.Admission != "controller" {
		bad("admission", o.Admission, "want none (agents take free slots) or controller (the rollout controller admits nodes)")
	}
	if o.Concurrency < 1 || o.Concurrency > 1000 {
		bad("concurrency", o.Concurrency, "want 1 to 1000 nodes at once")
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"period", o.Period}, {"reboot-timeout", o.RebootTimeout}, {"drain-timeout", o.DrainTimeout},
		{"drain-retry-backoff", o.DrainRetryBackoff}} {
		if d.value <= 0 {
			bad(d.flag, d.value, "want a positive duration")
		}
	}
	if o.LockTTL < 0 {
		bad("lock-ttl", o.LockTTL, "want 0 (never reclaim a live node's slot) or a positive duration")
	}
	if o.LockTTL > 0 && o.LockTTL < o.DrainTimeout+o.RebootTimeout {
		// A rebooting node cannot renew: a shorter TTL hands its slot on while it
		// is still down, and more nodes are out than allowed.
		bad("lock-ttl", o.LockTTL, fmt.Sprintf("shorter than --drain-timeout + --reboot-timeout (%s): a slot would expire while its node drains or reboots",
			o.DrainTimeout+o.RebootTimeout))
	}
	if o.MinRebootInterval < 0 {
		bad("min-reboot-interval", o.MinRebootInterval, "want 0 or a positive duration")
	}
	if o.MaxRepeatedReboots < 1 {
		bad("max-repeated-reboots", o.MaxRepeatedReboots, "want at least 1")
	}
	if o.ConfigGeneration < 0 {
		bad("config-generation", o.ConfigGeneration, "want 0 or more")
	}
	if o.DrainGracePeriod < -1 {
		bad("drain-grace-period", o.DrainGracePeriod, "want -1 (each pod's own) or seconds")
	}
	if _, err := labels.Parse(o.DrainPodSelector); err != nil {
		bad("drain-pod-selector", o.DrainPodSelector, err.Error())
	}
	o.validateHost(bad)
	errs = append(errs, o.Checks.validate(o.NodeName, bad)...)
	if err := o.Notify.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.NotifyBlockedAfter < 0 {
		bad("notify-blocked-after", o.NotifyBlockedAfter, "want 0 (never) or a positive duration")
	}
	o.validateCycle(bad)
	sched, err := o.schedule()
	if err != nil {
		errs = append(errs, err)
	}
	return sched, errors.Join(errs...)
}

// schedule is --window and --blackout, or the one window of --reboot-days,
// --start-time, --end-time and --time-zone (not both).
func (o Options) schedule() (schedule.Schedule, error) {
	if len(o.Windows) > 0 {
		if o.RebootDays != DefaultRebootDays || o.StartTime != DefaultStartTime || o.EndTime != DefaultEndTime || o.TimeZone != DefaultTimeZone {
			return schedule.Schedule{}, fmt.Errorf("--window %q: set either --window or --reboot-days/--start-time/--end-time/--time-zone, not both",
				strings.Join(o.Windows, "; "))
		}
		return schedule.Parse(o.Windows, o.Blackouts)
	}
	window, err := schedule.ParseWindow(o.RebootDays, o.StartTime, o.EndTime, o.TimeZone)
	var errs []error
	errs = append(errs, err)
	var blackouts []schedule.Blackout
	for _, v := range o.Blackouts {
		b, err := schedule.ParseBlackout(v)
		errs = append(errs, err)
		blackouts = append(blackouts, b)
	}
	if err := errors.Join(errs...); err != nil {
		return schedule.Schedule{}, err
	}
	return schedule.New([]schedule.Recurrence{window}, blackouts), nil
}

func (o Options) validateHost(bad func(string, any, string)) {
	switch o.RebootMethod {
	case "systemd":
	case "command":
		if strings.TrimSpace(o.RebootCommand) == "" {
			bad("reboot-command", o.RebootCommand, "--reboot-method=command needs a command")
		}
	default:
		bad("reboot-method", o.RebootMethod, "want systemd or command")
	}
	if o.HostExec != "systemd" && o.HostExec != "direct" {
		bad("host-exec", o.HostExec, "want systemd or direct")
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		bad("log-format", o.LogFormat, "want text or json")
	}
	if !strings.HasPrefix(o.HostRoot, "/") {
		bad("host-root", o.HostRoot, "want an absolute path")
	}
	if o.BootIDFile == "" {
		bad("boot-id-file", o.BootIDFile, "want the path of the kernel's boot id")
	}
	if o.SentinelFile == "" && o.SentinelCommand == "" {
		bad("sentinel-file", o.SentinelFile, "set a sentinel file or a sentinel command, or nothing tells when to reboot")
	}
	switch o.Patch {
	case "off", "security", "all":
	default:
		bad("patch", o.Patch, "want off, security or all")
	}
	if o.Patch != "off" && (o.PatchInterval <= 0 || o.PatchTimeout <= 0) {
		bad("patch-interval", fmt.Sprintf("%s/%s", o.PatchInterval, o.PatchTimeout), "--patch-interval and --patch-timeout must be positive")
	}
}

// hostRunner runs host commands: as systemd transient units (the default, no
// privileged container needed) or as local processes.
func (o Options) hostRunner(ctx context.Context, log *slog.Logger) (host.Runner, error) {
	if o.HostExec == "direct" {
		return host.NewDirectRunner(o.HostRoot), nil
	}
	r := &systemd.Runner{Address: o.DBusAddress, OutputDir: o.OutputDir}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("--host-exec=systemd: %w", err)
	}
	// A unit outlives an agent that stopped waiting for it (dpkg is never killed
	// mid-transaction); collect the ones that finished since.
	if collected, err := r.Cleanup(ctx); err != nil {
		log.Warn("cannot collect finished host command units", "err", err)
	} else if len(collected) > 0 {
		log.Info("collected host command units left by an earlier run", "units", collected)
	}
	return r, nil
}

// bootIDReader reads the boot id as the host sees it: through the host runner
// with --host-exec=systemd (the container's /proc may be another kernel's), or
// the file itself when commands run directly.
func (o Options) bootIDReader(runner host.Runner) BootIDReader {
	if o.HostExec == "direct" {
		return bootIDFile(o.BootIDFile)
	}
	return &host.HostBootID{Runner: runner, Path: o.BootIDFile}
}

// busyChecker tells whether a package transaction or a nodepatch host command
// still runs, through the same runner.
func (o Options) busyChecker(runner host.Runner) HostBusyChecker {
	b := &host.BusyChecker{Runner: runner}
	if running, ok := runner.(host.RunningLister); ok {
		b.Running = running
	}
	return b
}

func (o Options) rebooter(runner host.Runner, log *slog.Logger) (Rebooter, error) {
	if o.RebootMethod == "command" {
		return &reboot.Command{Runner: runner, Script: o.RebootCommand}, nil
	}
	return &reboot.Systemd{Address: o.DBusAddress, Logger: log}, nil
}

// packageManager tells which package manager the host has. With
// --host-exec=systemd the agent's own filesystem is not the host's, so it asks
// the host, through the same runner as every other host command.
func (o Options) packageManager(ctx context.Context, runner host.Runner) (packages.Kind, error) {
	if o.HostExec == "direct" {
		return packages.Detect(o.HostRoot)
	}
	script := `for p in apt-get dnf yum; do if command -v "$p" >/dev/null; then echo "$p"; exit 0; fi; done; exit 3`
	res, err := runner.Run(ctx, host.Command{Name: "detect-packages", Args: []string{"/bin/sh", "-c", script}, Timeout: time.Minute})
	if err != nil {
		return "", fmt.Errorf("asking the host for its package manager: %w", err)
	}
	switch found := strings.TrimSpace(res.Output); {
	case res.ExitStatus != 0:
		return "", fmt.Errorf("the host has none of apt-get, dnf, yum (exit status %d)", res.ExitStatus)
	case found == "apt-get":
		return packages.KindApt, nil
	case found == "dnf" || found == "yum":
		return packages.Kind(found), nil
	default:
		return "", fmt.Errorf("unexpected answer %q from the host's package manager check", found)
	}
}

// patcher is the host's package manager, or nil while patching is off or the host
// has none that nodepatch knows (then a warning says so, and reboots still work).
func (o Options) patcher(kind packages.Kind, runner host.Runner, log *slog.Logger) Patcher {
	if o.Patch == "off" {
		return nil
	}
	if kind == "" {
		log.Warn("patching is on but the host has no supported package manager", "hostRoot", o.HostRoot)
		return nil
	}
	m, err := packages.New(packages.Config{Kind: kind, HostRoot: o.HostRoot, Runner: runner, Exclude: o.PatchExclude, Timeout: o.PatchTimeout})
	if err != nil {
		log.Warn("cannot set up the package manager; only reboots are coordinated", "kind", kind, "err", err)
		return nil
	}
	log.Info("patching with the host's package manager", "kind", kind, "mode", o.Patch, "interval", o.PatchInterval, "underLock", o.PatchUnderLock)
	return m
}

func (o Options) validateCycle(bad func(string, any, string)) {
	switch DrainTimeoutAction(o.DrainTimeoutAction) {
	case DrainRetry, DrainQuarantine, DrainForce:
	default:
		bad("drain-timeout-action", o.DrainTimeoutAction, "want retry, quarantine or force")
	}
	if o.ForceDrainGrace < 0 {
		bad("force-drain-grace-period", o.ForceDrainGrace, "want seconds, 0 or more")
	}
	if o.SkipWaitForDeleteTimeout < 0 {
		bad("skip-wait-for-delete-timeout", o.SkipWaitForDeleteTimeout, "want seconds, 0 (wait for every pod) or more")
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"drain-delay", o.DrainDelay}, {"reboot-delay", o.RebootDelay}, {"lock-release-delay", o.LockReleaseDelay}} {
		if d.value < 0 {
			bad(d.flag, d.value, "want 0 or a positive duration")
		}
	}
	if soak := o.soak(); o.Checks.HealthTimeout > 0 && soak >= o.Checks.HealthTimeout {
		bad("soak", soak, fmt.Sprintf("not shorter than --health-timeout (%s): every cycle would fail before its soak ends", o.Checks.HealthTimeout))
	}
	if o.LockReleaseDelay > 0 && o.Checks.Soak > 0 {
		bad("lock-release-delay", o.LockReleaseDelay, "kured's name for --soak: set one of them")
	}
	if _, err := ParseGates(o.Gates); err != nil {
		bad("gate", strings.Join(o.Gates, " "), err.Error())
	}
	for flag, list := range map[string][]string{"pre-reboot-node-labels": o.PreRebootNodeLabels, "post-reboot-node-labels": o.PostRebootNodeLabels} {
		if _, err := ParseNodeLabels(list); err != nil {
			bad(flag, strings.Join(list, ","), err.Error())
		}
	}
}

// ParseNodeLabels reads kured's KEY=VALUE label list. Keys nodepatch owns are
// refused: they carry its own state.
func ParseNodeLabels(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
			return nil, fmt.Errorf("%q: label key %s", kv, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(value); len(msgs) > 0 {
			return nil, fmt.Errorf("%q: label value %s", kv, strings.Join(msgs, "; "))
		}
		if strings.HasPrefix(key, "nodepatch.io/") || key == state.LabelExcludeFromLB {
			return nil, fmt.Errorf("%q: nodepatch sets %s itself", kv, key)
		}
		out[key] = value
	}
	return out, nil
}

// cycleLabels are the node labels the options ask for (validated already).
func (o Options) cycleLabels() NodeLabels {
	pre, _ := ParseNodeLabels(o.PreRebootNodeLabels)
	post, _ := ParseNodeLabels(o.PostRebootNodeLabels)
	return NodeLabels{Pre: pre, Post: post, ExcludeFromLB: o.ExcludeFromLB}
}

// soak is --soak, or kured's --lock-release-delay.
func (o Options) soak() time.Duration { return max(o.Checks.Soak, o.LockReleaseDelay) }

// notifier starts the notifications the options ask for (nil when none). It
// runs on a context of its own so that the last messages still go out while
// the agent stops; stop flushes them, for at most ten seconds.
func (o Options) notifier(ctx context.Context, observer notify.Observer, log *slog.Logger) (Notifier, func(), error) {
	if len(o.Notify.URLs) == 0 && o.Notify.WebhookURL == "" {
		return nil, func() {}, nil
	}
	c := o.Notify
	c.Observer, c.Logger = observer, log
	n, err := notify.New(c)
	if err != nil {
		return nil, nil, err
	}
	n.Start(context.WithoutCancel(ctx))
	stop := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			log.Warn("notifications still queued at exit were dropped", "err", err)
		}
	}
	return n, stop, nil
}
