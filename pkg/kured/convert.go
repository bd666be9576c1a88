package kured

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodepatch/nodepatch/pkg/notify"
)

// The chart defaults the conversions rely on (charts/nodepatch/values.yaml).
const (
	chartRunMount      = "/host/run" // hostMounts.run.mountPath: the host's /run, read-only
	chartSentinel      = chartRunMount + "/reboot-required"
	chartDrainTimeout  = 10 * time.Minute // agent.drain.timeout
	chartRebootTimout  = 10 * time.Minute // agent.reboot.timeout
	chartHealthTimeout = 10 * time.Minute // agent.health.timeout
	maxConcurrency     = 1000             // the agent's --concurrency bound
)

// delayTo converts one of kured's delays (0 or less: none) to a chart value.
func delayTo(path string) func(*migration, *setting) error {
	return func(m *migration, s *setting) error {
		if !m.given(s) {
			return nil
		}
		d, _ := time.ParseDuration(s.value())
		if d < 0 {
			m.note(s, "%q: kured waits only for a delay above 0; not carried", s.value())
		}
		if d > 0 {
			m.setValue(path, compactDuration(d))
		}
		return nil
	}
}

func (m *migration) skipWait(s *setting) error {
	if !m.given(s) {
		return nil
	}
	n, _ := strconv.Atoi(s.value())
	if n < 0 {
		m.note(s, "%d: kured skips waiting only above 0 seconds; not carried", n)
	}
	if n > 0 {
		m.setValue("agent.drain.skipWaitForDeleteTimeout", n)
	}
	return nil
}

// nodeLabelsTo converts kured's KEY=VALUE label list. kured splits each item
// at "=" when it drains (an item without one crashes it then); nodepatch
// checks them when it starts and refuses its own keys, so items it would refuse
// are noted and left out.
func nodeLabelsTo(path string) func(*migration, *setting) error {
	return func(m *migration, s *setting) error {
		if !m.given(s) {
			return nil
		}
		var labels []string
		for _, item := range s.values {
			key, value, ok := strings.Cut(item, "=")
			var why string
			switch {
			case !ok:
				why = "not KEY=VALUE (kured fails on it when it drains)"
			case len(validation.IsQualifiedName(key)) > 0:
				why = "not a label key: " + strings.Join(validation.IsQualifiedName(key), "; ")
			case len(validation.IsValidLabelValue(value)) > 0:
				why = "not a label value: " + strings.Join(validation.IsValidLabelValue(value), "; ")
			case strings.HasPrefix(key, "nodepatch.io/") || key == "node.kubernetes.io/exclude-from-external-load-balancers":
				why = "nodepatch sets that label itself"
			}
			if why != "" {
				m.note(s, "%q: %s; not carried", item, why)
				continue
			}
			if !slices.Contains(labels, item) {
				labels = append(labels, item)
			}
		}
		if len(labels) > 0 {
			m.setValue(path, labels)
		}
		return nil
	}
}

// podSelectors converts kured's --blocking-pod-selector list. kured lists the
// node's pods with each selector: an empty one matches every pod, and one the
// API server refuses makes the list fail, and kured then holds every reboot.
// nodepatch refuses both when it starts, so they are noted and left out.
func (m *migration) podSelectors(s *setting) error {
	if !m.given(s) {
		return nil
	}
	var selectors []string
	for _, sel := range s.values {
		if strings.TrimSpace(sel) == "" {
			m.note(s, "an empty selector: kured holds the reboot of every node with a pod on it; nodepatch refuses it (it would match every pod): not carried")
			continue
		}
		if _, err := labels.Parse(sel); err != nil {
			m.note(s, "%q is not a label selector (%v): kured's pod query fails with it, which holds every reboot; nodepatch refuses it: not carried", sel, err)
			continue
		}
		if !slices.Contains(selectors, sel) {
			selectors = append(selectors, sel)
		}
	}
	if len(selectors) > 0 {
		m.setValue("agent.blockers.podSelectors", selectors)
	}
	return nil
}

// prometheus converts --prometheus-url and the --alert-* flags, which kured
// uses only with a URL (nodepatch refuses them without one).
func (m *migration) prometheus(address *setting) error {
	alerts := []struct {
		s    *setting
		path string
	}{
		{m.cfg.get("alert-filter-regexp"), "agent.blockers.prometheus.alertFilterRegexp"},
		{m.cfg.get("alert-filter-match-only"), "agent.blockers.prometheus.alertFilterMatchOnly"},
		{m.cfg.get("alert-firing-only"), "agent.blockers.prometheus.alertFiringOnly"},
	}
	if address.from != nil {
		m.given(address)
		for _, a := range alerts {
			m.given(a.s)
		}
		return nil
	}
	switch u := address.value(); {
	case u == "":
		for _, a := range alerts {
			if a.s.changed && !isDefault(a.s) {
				m.note(a.s, "kured uses it only with --prometheus-url, which is not set; not carried")
			}
		}
		return nil
	case !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) || len(u) <= len("https://") || strings.ContainsFunc(u, unicode.IsSpace):
		// What the chart's schema takes for agent.blockers.prometheus.url.
		m.note(address, "%q is not an http:// or https:// URL, which nodepatch needs: not carried, nor the --alert-* flags", u)
		return nil
	}
	m.setValue("agent.blockers.prometheus.url", address.value())
	for _, a := range alerts {
		if !m.given(a.s) || isDefault(a.s) {
			continue
		}
		if a.s.flag.Kind == KindBool {
			m.setValue(a.path, a.s.value() == "true")
		} else {
			m.setValue(a.path, a.s.value())
		}
	}
	return nil
}

// lockReleaseDelay converts kured's wait before it releases the lock after a
// reboot to nodepatch's soak, which must stay shorter than the health timeout.
func (m *migration) lockReleaseDelay(s *setting) error {
	if !m.given(s) {
		return nil
	}
	d, _ := time.ParseDuration(s.value())
	if d < 0 {
		m.note(s, "%q: kured waits only for a delay above 0; not carried", s.value())
	}
	if d <= 0 {
		return nil
	}
	m.setValue("agent.health.soak", compactDuration(d))
	m.note(s, "nodepatch's soak: the node keeps its slot this long after it is back, and must be healthy at its end (agent.health.*)")
	if d >= chartHealthTimeout {
		m.setValue("agent.health.timeout", compactDuration(d+chartHealthTimeout))
		m.note(s, "the soak must be shorter than agent.health.timeout: that is raised to %s", compactDuration(d+chartHealthTimeout))
	}
	return nil
}

// noEquivalentUnless notes a flag with no nodepatch counterpart when it is set
// to anything but value (its default, which needs nothing).
func noEquivalentUnless(value string) func(*migration, *setting) error {
	return func(m *migration, s *setting) error {
		if m.given(s) && s.value() != value {
			m.note(s, "%q has no equivalent: %s", s.value(), s.flag.NoEquivalent)
		}
		return nil
	}
}

func (m *migration) nodeID(s *setting) error {
	if s.from != nil && s.from.FieldRef != nil && s.from.FieldRef.FieldPath == "spec.nodeName" {
		return nil // kured's manifests all do this; the chart does the same for nodepatch
	}
	if s.from != nil || s.changed {
		m.note(s, "not carried: %s", s.flag.NoEquivalent)
	}
	return nil
}

func (m *migration) period(s *setting) error {
	if !m.given(s) {
		return nil
	}
	d, _ := time.ParseDuration(s.value())
	if d <= 0 {
		m.note(s, "%q: kured's check never runs with a period of 0 or less; not carried (nodepatch's 1m stays)", s.value())
		return nil
	}
	m.setValue("agent.period", compactDuration(d))
	return nil
}

// sentinel converts --reboot-sentinel and --reboot-sentinel-command. kured
// runs the command, when set, in the host's mount namespace (nsenter into
// PID 1) and then ignores the file; the file is checked inside kured's own
// container (from kured 1.17; before, through nsenter on the host), so the
// path is mapped through the container's host mounts.
func (m *migration) sentinel(file *setting) error {
	command := m.cfg.get("reboot-sentinel-command")
	if command.from != nil {
		m.given(command)
		return nil
	}
	if cmd := command.value(); cmd != "" {
		m.setValue("agent.sentinel.command", cmd)
		m.note(command, "nodepatch runs it on the host with /bin/sh -c (as a transient systemd unit), where kured split it into words and ran it through nsenter: check its quoting. "+
			"nodepatch also keeps its sentinel file %s (the host's /run/reboot-required): either asks for a reboot, where kured consulted only the command", chartSentinel)
		if file.changed {
			m.note(file, "kured ignores it when --reboot-sentinel-command is set; not carried")
		}
		return nil
	}
	if file.from != nil {
		m.given(file)
		return nil
	}
	inPod := file.value()
	hostPath, how := m.hostPath(inPod)
	switch how {
	case viaOtherVolume:
		m.note(file, "%q lies in a volume that is not a host folder, so it is not the host's file: not carried (nodepatch's %s stays)", inPod, chartSentinel)
		return nil
	case notMounted:
		if file.changed || inPod != file.flag.Default {
			m.note(file, "kured's container mounts no host folder at %q: read as the host's own path (kured before 1.17 read it on the host through nsenter; 1.17 and later look inside their own container, where it appears only through a host mount)", inPod)
		}
	}
	rest, underRun := underHostRun(hostPath)
	switch {
	case underRun && path.Join(chartRunMount, rest) == chartSentinel:
		if file.changed {
			m.setValue("agent.sentinel.file", chartSentinel)
		}
	case underRun:
		m.setValue("agent.sentinel.file", path.Join(chartRunMount, rest))
	default:
		m.setValue("agent.sentinel.command", "test -e "+shellQuote(hostPath))
		m.note(file, "the host's %s is outside /run, the only host folder the chart mounts: checked on the host with the command `test -e` instead. "+
			"nodepatch also keeps its sentinel file %s (the host's /run/reboot-required): either asks for a reboot", hostPath, chartSentinel)
	}
	return nil
}

// How a path inside kured's container reaches the host.
const (
	viaHostPath = iota
	viaOtherVolume
	notMounted
)

// hostPath maps a path in kured's container to the host through the
// container's deepest mount above it.
func (m *migration) hostPath(inPod string) (string, int) {
	p := path.Clean(inPod)
	best := -1
	for i, vm := range m.in.VolumeMounts {
		mp := path.Clean(vm.MountPath)
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) &&
			(best < 0 || len(mp) > len(path.Clean(m.in.VolumeMounts[best].MountPath))) {
			best = i
		}
	}
	if best < 0 {
		return p, notMounted
	}
	vm := m.in.VolumeMounts[best]
	for _, v := range m.in.Volumes {
		if v.Name != vm.Name {
			continue
		}
		if v.HostPath == nil {
			return p, viaOtherVolume
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, path.Clean(vm.MountPath)), "/")
		return path.Join(v.HostPath.Path, vm.SubPath, rel), viaHostPath
	}
	return p, viaOtherVolume // a mount of a volume the pod does not declare
}

// underHostRun tells whether a host path lies in the host's /run (/var/run is
// a link to it on every systemd host), and where inside it.
func underHostRun(hostPath string) (string, bool) {
	p := path.Clean(hostPath)
	for _, dir := range []string{"/run", "/var/run"} {
		if rest, ok := strings.CutPrefix(p, dir+"/"); ok {
			return rest, true
		}
	}
	return "", false
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reboot converts --reboot-method, --reboot-command and --reboot-signal.
func (m *migration) reboot(method *setting) error {
	command, signal := m.cfg.get("reboot-command"), m.cfg.get("reboot-signal")
	if !method.changed && !command.changed && !signal.changed {
		return nil // kured's default, systemctl reboot, is nodepatch's default
	}
	for _, s := range []*setting{method, command, signal} {
		if s.from != nil {
			m.given(s)
			return nil
		}
	}
	switch method.value() {
	case "command":
		cmd := command.value()
		switch {
		case isSystemctlReboot(cmd):
			m.setValue("agent.reboot.method", "systemd")
		case strings.TrimSpace(cmd) == "":
			m.note(command, "empty: kured has nothing to run; not carried (nodepatch reboots through systemd's reboot.target)")
		default:
			m.setValue("agent.reboot.method", "command")
			m.setValue("agent.reboot.command", cmd)
			m.note(command, "nodepatch runs it on the host with /bin/sh -c (as a transient systemd unit), where kured split it into words and ran it through nsenter: check its quoting")
		}
	case "signal":
		n, _ := strconv.Atoi(signal.value())
		if n == 39 {
			m.setValue("agent.reboot.method", "systemd")
			m.note(method, "kured sent SIGRTMIN+5 to the host's PID 1, which systemd takes as \"start reboot.target\"; nodepatch starts reboot.target over D-Bus (agent.reboot.method systemd): the same reboot")
			return nil
		}
		m.note(signal, "kured sent signal %d to the host's PID 1; nodepatch has no signal method and reboots through systemd's reboot.target (agent.reboot.method systemd, the default); "+
			"use agent.reboot.method command with a command of your own if that signal did something else", n)
	default:
		return &FlagError{Flag: "reboot-method", Source: sourceOf(method), Value: method.value(),
			Reason: "kured knows only command and signal, and exits on anything else"}
	}
	return nil
}

// isSystemctlReboot: the command asks systemd for the reboot nodepatch's
// systemd method asks for (reboot.target).
func isSystemctlReboot(cmd string) bool {
	switch strings.Join(strings.Fields(cmd), " ") {
	case "/bin/systemctl reboot", "/usr/bin/systemctl reboot", "systemctl reboot":
		return true
	}
	return false
}

func sourceOf(s *setting) string {
	if s.env != "" {
		return s.env
	}
	return "argument"
}

func (m *migration) forceReboot(s *setting) error {
	if !m.given(s) {
		return nil
	}
	force := s.value() == "true"
	m.setValue("agent.reboot.afterDrainTimeout", force)
	if force {
		m.note(s, "nodepatch reboots anyway only after a drain that timed out (agent.reboot.afterDrainTimeout); a drain that fails otherwise is undone and retried, where kured rebooted after any drain error")
	}
	return nil
}

// kuredWeekday reads one day as kured's timewindow does: a number from 0
// (Sunday) to 6, or, in any case, a day's first two or three letters or its
// whole English name.
func kuredWeekday(day string) (time.Weekday, error) {
	if n, err := strconv.Atoi(day); err == nil {
		if n >= 0 && n < 7 {
			return time.Weekday(n), nil
		}
		return 0, fmt.Errorf("weekday number %d out of range 0 (Sunday) to 6", n)
	}
	lower := strings.ToLower(day)
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if lower == name || lower == name[:2] || lower == name[:3] {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown weekday %q", day)
}

func (m *migration) days(s *setting) error {
	if !m.given(s) {
		return nil
	}
	var on [7]bool
	for _, item := range s.values {
		d, err := kuredWeekday(item)
		if err != nil {
			return &FlagError{Flag: s.flag.Name, Source: sourceOf(s), Value: writeAsCSV(s.values), Reason: err.Error() + ", and kured exits"}
		}
		on[d] = true
	}
	// The chart's order: the working week first.
	var days []string
	for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		if on[d] {
			days = append(days, strings.ToLower(d.String()[:3]))
		}
	}
	if len(days) == 0 {
		m.note(s, "empty: kured never reboots with no day; nodepatch's window needs one: not carried (stop reboots with `nodepatch pause` instead)")
		return nil
	}
	m.setValue("agent.window.days", days)
	return nil
}

// kuredTime reads a time of day as kured's timewindow does: the first of its
// layouts that parses.
func kuredTime(s string) (time.Time, error) {
	for _, layout := range []string{"15:04", "15:04:05", "03:04pm", "15", "03pm", "3pm"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time of day kured reads (15:04, 15:04:05, 03:04pm, 15, 03pm, 3pm)")
}

// times converts --start-time and --end-time. kured's window runs from the
// start second through the whole end second (end included); nodepatch's from
// start minute up to the end minute (end excluded). An end of hh:mm:59 is the
// next minute exactly; other seconds are rounded up, never giving a reboot
// less room than kured did, and a start's seconds are rounded up too, never
// starting earlier than kured would.
func (m *migration) times(start *setting) error {
	end := m.cfg.get("end-time")
	if !start.changed && !end.changed {
		return nil
	}
	if start.from != nil || end.from != nil {
		m.given(start)
		m.given(end)
		return nil
	}
	from, err := kuredTime(start.value())
	if err != nil {
		return &FlagError{Flag: "start-time", Source: sourceOf(start), Value: start.value(), Reason: err.Error() + ", and kured exits"}
	}
	to, err := kuredTime(end.value())
	if err != nil {
		return &FlagError{Flag: "end-time", Source: sourceOf(end), Value: end.value(), Reason: err.Error() + ", and kured exits"}
	}
	startMin := from.Hour()*60 + from.Minute()
	if from.Second() > 0 {
		startMin++
		m.note(start, "%q: nodepatch's window starts on a minute: %s, the next one", start.value(), clock(startMin))
	}
	endMin := to.Hour()*60 + to.Minute()
	if to.Second() > 0 {
		endMin++
		if to.Second() != 59 && end.changed {
			m.note(end, "%q: nodepatch's window ends on a minute: %s, the next one", end.value(), clock(endMin))
		}
	}
	if startMin >= 24*60 {
		startMin = 24*60 - 1
		m.note(start, "%q: the last minute of the day it can start on is 23:59", start.value())
	}
	if startMin == endMin {
		m.note(start, "%q to %q: kured's window is at most a minute long; nodepatch refuses a window whose start and end are equal: not carried", start.value(), end.value())
		return nil
	}
	if start.changed {
		m.setValue("agent.window.startTime", clock(startMin))
	}
	if end.changed {
		m.setValue("agent.window.endTime", clock(endMin))
	}
	return nil
}

// clock writes minutes after midnight as HH:MM (1440 is 24:00).
func clock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

func (m *migration) timeZone(s *setting) error {
	if !m.given(s) {
		return nil
	}
	zone := s.value()
	if _, err := time.LoadLocation(zone); err != nil {
		return &FlagError{Flag: s.flag.Name, Source: sourceOf(s), Value: zone, Reason: err.Error() + ", and kured exits"}
	}
	if zone == "" {
		zone = "UTC" // time.LoadLocation's reading of ""
	}
	m.setValue("agent.window.timeZone", zone)
	return nil
}

func (m *migration) concurrency(s *setting) error {
	if !m.given(s) {
		return nil
	}
	n, _ := strconv.Atoi(s.value())
	switch {
	case n < 1:
		m.note(s, "%d: kured takes one node at a time below 1; carried as 1", n)
		n = 1
	case n > maxConcurrency:
		m.note(s, "%d: nodepatch's bound is %d nodes at once; carried as %d", n, maxConcurrency, maxConcurrency)
		n = maxConcurrency
	}
	m.setValue("agent.concurrency", n)
	m.setValue("controller.maxUnavailable", n)
	if n > 1 {
		m.note(s, "the rollout controller (controller.enabled, on by default) keeps the limit as controller.maxUnavailable, which also counts NotReady nodes and nodes cordoned by others; agent.concurrency is the limit without it")
	}
	return nil
}

func (m *migration) lockTTL(s *setting) error {
	if !m.given(s) {
		return nil
	}
	d, _ := time.ParseDuration(s.value())
	if d <= 0 {
		m.setValue("agent.lockTTL", "0s")
		return nil
	}
	drain := chartDrainTimeout
	if dt, err := time.ParseDuration(m.cfg.get("drain-timeout").value()); err == nil && dt > 0 && m.cfg.get("drain-timeout").from == nil {
		drain = dt
	}
	least := drain + chartRebootTimout
	m.note(s, "kured's TTL counts from when a node took the lock, and kured never renews it: a node still draining or rebooting loses it. "+
		"nodepatch's counts from the holder's last renewal, so only a node that stopped renewing loses its slot")
	if d < least {
		m.note(s, "%s is shorter than a drain and a reboot may take (agent.drain.timeout + agent.reboot.timeout = %s), which nodepatch refuses: carried as %s",
			s.value(), compactDuration(least), compactDuration(least))
		d = least
	}
	m.setValue("agent.lockTTL", compactDuration(d))
	return nil
}

// lockLocation points nodepatch's agents at kured's lock (--ds-namespace,
// --ds-name, --lock-annotation), so that while both run no node starts a
// nodepatch cycle while kured holds its lock.
func (m *migration) lockLocation(name *setting) error {
	ns, anno := m.cfg.get("ds-namespace"), m.cfg.get("lock-annotation")
	for _, s := range []*setting{name, ns, anno} {
		if s.from != nil {
			m.given(s)
			return nil
		}
	}
	daemonSet := ns.value() + "/" + name.value()
	switch {
	case len(validation.IsDNS1123Label(ns.value())) > 0 || len(validation.IsDNS1123Subdomain(name.value())) > 0:
		m.note(name, "%q is no DaemonSet's namespace and name: kured cannot keep its lock there; not carried", daemonSet)
		return nil
	case len(validation.IsQualifiedName(anno.value())) > 0:
		m.note(anno, "%q is not an annotation key: kured cannot keep its lock there; not carried", anno.value())
		return nil
	}
	m.setValue("agent.blockers.kured.daemonSet", daemonSet)
	m.setValue("agent.blockers.kured.lockAnnotation", anno.value())
	m.notes = append(m.notes, Note{Text: fmt.Sprintf("kured's lock is the annotation %s on DaemonSet %s; nodepatch's own lock is Leases (agent.lockName). "+
		"agent.blockers.kured points nodepatch's agents at kured's lock: while kured holds it no nodepatch cycle starts, and once kured's DaemonSet is gone it holds nothing "+
		"(docs/migrating-from-kured.md)", anno.value(), daemonSet)})
	if m.in.DaemonSetName != "" && (name.value() != m.in.DaemonSetName || ns.value() != m.in.DaemonSetNamespace) {
		m.note(name, "kured keeps its lock on DaemonSet %s, not on this one (%s/%s)", daemonSet, m.in.DaemonSetNamespace, m.in.DaemonSetName)
	}
	return nil
}

func (m *migration) drainTimeout(s *setting) error {
	if !m.given(s) {
		return nil
	}
	d, _ := time.ParseDuration(s.value())
	if d <= 0 {
		m.note(s, "%q: %s", s.value(), s.flag.IfUnset)
		return nil
	}
	m.setValue("agent.drain.timeout", compactDuration(d))
	return nil
}

func (m *migration) gracePeriod(s *setting) error {
	if !m.given(s) {
		return nil
	}
	n, _ := strconv.Atoi(s.value())
	if n < -1 {
		m.note(s, "%d: a negative grace period is each pod's own, for kured and nodepatch alike; carried as -1", n)
		n = -1
	}
	m.setValue("agent.drain.gracePeriod", n)
	return nil
}

func (m *migration) podSelector(s *setting) error {
	if !m.given(s) || s.value() == "" {
		return nil
	}
	if _, err := labels.Parse(s.value()); err != nil {
		m.note(s, "%q is not a label selector (%v): kured's drains fail with it, nodepatch's agent would not start; not carried", s.value(), err)
		return nil
	}
	m.setValue("agent.drain.podSelector", s.value())
	return nil
}

// notifyURL carries kured's --notify-url to agent.notify.urls. A URL kured
// reads from a Secret stays there: the chart renders no --notify-url for an
// empty list, so the agent reads NODEPATCH_NOTIFY_URL from the same Secret.
func (m *migration) notifyURL(s *setting) error {
	if s.from != nil {
		name := "NODEPATCH_" + strings.TrimPrefix(s.env, envPrefix)
		m.extraEnv = append(m.extraEnv, corev1.EnvVar{Name: name, ValueFrom: s.from})
		m.note(s, "kured takes it from %s (%s): carried as agent.extraEnv %s from the same source", s.env, describeSource(s.from), name)
		return nil
	}
	if !s.changed {
		return nil
	}
	u := stripQuotes(s.value()) // kured strips one pair of surrounding quotes
	if u == "" {
		return nil // kured sends nothing
	}
	if s.args > 1 && s.env == "" {
		m.note(s, "given %d times: kured's string flag keeps the last, which is carried; add the others to agent.notify.urls if your kured version took them all", s.args)
	}
	m.carryNotifyURL(s, u)
	return nil
}

// slackHookURL converts kured's deprecated --slack-hook-url to the
// --notify-url kured derives from it (slack://TOKEN_A/TOKEN_B/TOKEN_C).
func (m *migration) slackHookURL(s *setting) error {
	if !m.given(s) || s.value() == "" {
		return nil
	}
	other := m.cfg.get("notify-url")
	if other.from != nil || other.value() != "" {
		m.note(s, "kured uses --notify-url when both are set; not carried")
		return nil
	}
	u, err := url.Parse(stripQuotes(s.value()))
	parts := []string(nil)
	if err == nil {
		parts = strings.Split(strings.ReplaceAll(u.Path, "/services/", ""), "/")
	}
	if len(parts) != 3 {
		m.note(s, "not a Slack hook URL kured can use (https://hooks.slack.com/services/A/B/C): kured sends nothing; not carried")
		return nil
	}
	if m.carryNotifyURL(s, "slack://"+strings.Join(parts, "/")) {
		m.note(s, "carried as agent.notify.urls slack://%s, the URL kured derived from it", strings.Join(parts, "/"))
	}
	return nil
}

// chartNotifyURL is values.schema.json's pattern of an agent.notify.urls item.
var chartNotifyURL = regexp.MustCompile(`^[a-z][a-z0-9+.-]*://\S+$`)

// carryNotifyURL sets agent.notify.urls to u when nodepatch's agent and the
// chart take it, and says why not otherwise: the agent checks each URL with
// shoutrrr when it starts and would not start with one it refuses.
func (m *migration) carryNotifyURL(s *setting, u string) bool {
	if err := (notify.Config{URLs: []string{u}}).Validate(); err != nil {
		// The agent's error shows the URL with its secrets left out.
		m.note(s, "nodepatch's agent refuses it (%v), and would not start with it: not carried", err)
		return false
	}
	if !chartNotifyURL.MatchString(u) {
		m.note(s, "the chart takes a notification URL only as scheme://… with a lower-case scheme and no white space: not carried")
		return false
	}
	m.setValue("agent.notify.urls", []string{u})
	return true
}

// messageTemplateTo converts one of kured's --message-template-* flags. kured's
// default is nodepatch's, so it needs nothing; a template the agent refuses
// (a placeholder other than %s, %s twice, a lone %: kured's fmt.Sprintf writes
// %!verb noise for those) is noted and the default stays. set puts the value
// into the agent's notification settings, for the agent's own check.
func messageTemplateTo(path string, set func(*notify.Config, string)) func(*migration, *setting) error {
	return func(m *migration, s *setting) error {
		if !m.given(s) || s.value() == "" || isDefault(s) {
			return nil
		}
		var c notify.Config
		set(&c, s.value())
		if err := c.Validate(); err != nil {
			m.note(s, "nodepatch's agent refuses it (%v): not carried; the message stays %q", err, s.flag.Default)
			return nil
		}
		m.setValue(path, s.value())
		return nil
	}
}

// stripQuotes removes one pair of matching surrounding quotes, as kured does
// for notification URLs.
func stripQuotes(s string) string {
	if len(s) > 2 && s[0] == s[len(s)-1] && (s[0] == '"' || s[0] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

func (m *migration) metricsPort(s *setting) error {
	if !m.given(s) {
		return nil
	}
	n, _ := strconv.Atoi(s.value())
	if n < 1 || n > 65535 {
		m.note(s, "%d is not a TCP port: not carried (nodepatch's 8080 stays)", n)
		return nil
	}
	m.setValue("metrics.port", n)
	return nil
}

func (m *migration) logFormat(s *setting) error {
	if !m.given(s) {
		return nil
	}
	switch v := s.value(); v {
	case "text", "json":
		m.setValue("agent.logFormat", v)
	default:
		m.note(s, "%q: kured falls back to text; carried as text", v)
		m.setValue("agent.logFormat", "text")
	}
	return nil
}

// isDefault: the flag's value is kured's default, so carrying it changes
// nothing.
func isDefault(s *setting) bool {
	switch s.flag.Kind {
	case KindStringSlice, KindStringArray:
		return len(s.values) == 0 && s.flag.Default == ""
	case KindDuration:
		got, err1 := time.ParseDuration(s.value())
		def, err2 := time.ParseDuration(s.flag.Default)
		return err1 == nil && err2 == nil && got == def
	}
	return s.value() == s.flag.Default
}

// compactDuration writes d as Go does, without zero trailing units ("1h", not
// "1h0m0s"), which the chart's schema and the agent both read.
func compactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
