package kured

import "github.com/nodepatch/nodepatch/pkg/notify"

// Kind is the type of a kured flag's value, spelled as pflag's Type() spells
// it: kured's LoadFromEnv switches on exactly these names to decide how a
// KURED_* variable sets the flag.
type Kind string

// The kinds kured's flags have.
const (
	KindString      Kind = "string"
	KindBool        Kind = "bool"
	KindInt         Kind = "int"
	KindDuration    Kind = "duration"
	KindRegexp      Kind = "regexp"
	KindStringSlice Kind = "stringSlice" // comma-separated; repeats append
	KindStringArray Kind = "stringArray" // one item per occurrence; no KURED_* variable
)

// Flag is one kured flag and what it becomes in nodepatch: chart values
// (Paths), or nothing, for the reason in NoEquivalent.
type Flag struct {
	Name    string // without the leading "--"
	Kind    Kind
	Default string // kured's default, as its --help prints it
	// Paths are the nodepatch chart values the flag can set, dotted
	// ("agent.window.days").
	Paths []string
	// NoEquivalent says why nodepatch has no counterpart.
	NoEquivalent string
	// IfUnset is noted when kured runs with the flag's default and that
	// default behaves differently from nodepatch's.
	IfUnset string
	// With names the flag whose conversion reads this one too (the reboot
	// command goes with the reboot method).
	With string

	convert func(*migration, *setting) error
}

// Flags is kured's flag set as its pflag-based cmd/kured/main.go declares it
// (the main whose LoadFromEnv reads every flag from KURED_<NAME>), plus --debug
// and --kubeconfig, which kured's newer main adds. A flag missing here is
// noted, not guessed at. A fresh table is built on each call, so callers may
// keep or change what they get.
func Flags() []Flag {
	return []Flag{
		// The node.
		{Name: "node-id", Kind: KindString,
			NoEquivalent: "the chart gives the agent its node's name itself (NODE_NAME from spec.nodeName)",
			convert:      (*migration).nodeID},

		// Reboot check.
		{Name: "period", Kind: KindDuration, Default: "1m0s", Paths: []string{"agent.period"}, convert: (*migration).period},
		{Name: "reboot-sentinel", Kind: KindString, Default: "/var/run/reboot-required",
			Paths: []string{"agent.sentinel.file", "agent.sentinel.command"}, convert: (*migration).sentinel},
		{Name: "reboot-sentinel-command", Kind: KindString, Paths: []string{"agent.sentinel.command"},
			With: "reboot-sentinel"},

		// Reboot.
		{Name: "reboot-method", Kind: KindString, Default: "command",
			Paths: []string{"agent.reboot.method", "agent.reboot.command"}, convert: (*migration).reboot},
		{Name: "reboot-command", Kind: KindString, Default: "/bin/systemctl reboot",
			Paths: []string{"agent.reboot.method", "agent.reboot.command"}, With: "reboot-method"},
		{Name: "reboot-signal", Kind: KindInt, Default: "39", Paths: []string{"agent.reboot.method"},
			With: "reboot-method"},
		{Name: "reboot-delay", Kind: KindDuration, Default: "0s", Paths: []string{"agent.reboot.delay"}, convert: delayTo("agent.reboot.delay")},
		{Name: "force-reboot", Kind: KindBool, Default: "false", Paths: []string{"agent.reboot.afterDrainTimeout"},
			convert: (*migration).forceReboot},

		// Maintenance window.
		{Name: "reboot-days", Kind: KindStringSlice, Default: "su,mo,tu,we,th,fr,sa", Paths: []string{"agent.window.days"},
			convert: (*migration).days},
		{Name: "start-time", Kind: KindString, Default: "0:00", Paths: []string{"agent.window.startTime", "agent.window.endTime"},
			convert: (*migration).times},
		{Name: "end-time", Kind: KindString, Default: "23:59:59", Paths: []string{"agent.window.startTime", "agent.window.endTime"},
			With: "start-time"},
		{Name: "time-zone", Kind: KindString, Default: "UTC", Paths: []string{"agent.window.timeZone"}, convert: (*migration).timeZone},

		// Lock.
		{Name: "concurrency", Kind: KindInt, Default: "1", Paths: []string{"agent.concurrency", "controller.maxUnavailable"},
			convert: (*migration).concurrency},
		{Name: "lock-ttl", Kind: KindDuration, Default: "0s", Paths: []string{"agent.lockTTL"}, convert: (*migration).lockTTL},
		{Name: "lock-release-delay", Kind: KindDuration, Default: "0s", Paths: []string{"agent.health.soak", "agent.health.timeout"},
			convert: (*migration).lockReleaseDelay},
		// nodepatch's own lock is Leases (agent.lockName); these point its agents
		// at kured's lock while both run.
		{Name: "ds-name", Kind: KindString, Default: DefaultDaemonSet,
			Paths:   []string{"agent.blockers.kured.daemonSet", "agent.blockers.kured.lockAnnotation"},
			convert: (*migration).lockLocation},
		{Name: "ds-namespace", Kind: KindString, Default: DefaultNamespace, Paths: []string{"agent.blockers.kured.daemonSet"},
			With: "ds-name"},
		{Name: "lock-annotation", Kind: KindString, Default: LockAnnotation, Paths: []string{"agent.blockers.kured.lockAnnotation"},
			With: "ds-name"},

		// Drain.
		{Name: "drain-timeout", Kind: KindDuration, Default: "0s", Paths: []string{"agent.drain.timeout"},
			IfUnset: "kured's drain has no time limit; nodepatch's always has one: the chart's 10m (agent.drain.timeout) stays; raise it if your drains take longer",
			convert: (*migration).drainTimeout},
		{Name: "drain-grace-period", Kind: KindInt, Default: "-1", Paths: []string{"agent.drain.gracePeriod"},
			convert: (*migration).gracePeriod},
		{Name: "drain-pod-selector", Kind: KindString, Paths: []string{"agent.drain.podSelector"}, convert: (*migration).podSelector},
		{Name: "skip-wait-for-delete-timeout", Kind: KindInt, Default: "0", Paths: []string{"agent.drain.skipWaitForDeleteTimeout"},
			convert: (*migration).skipWait},
		{Name: "drain-delay", Kind: KindDuration, Default: "0s", Paths: []string{"agent.drain.delay"}, convert: delayTo("agent.drain.delay")},
		{Name: "prefer-no-schedule-taint", Kind: KindString,
			NoEquivalent: "nodepatch taints the node nodepatch.io/rebooting:NoSchedule for the whole cycle, from when it holds a slot; there is no PreferNoSchedule taint while a node waits",
			convert:      noEquivalentUnless("")},
		{Name: "pre-reboot-node-labels", Kind: KindStringSlice, Paths: []string{"agent.nodeLabels.preReboot"},
			convert: nodeLabelsTo("agent.nodeLabels.preReboot")},
		{Name: "post-reboot-node-labels", Kind: KindStringSlice, Paths: []string{"agent.nodeLabels.postReboot"},
			convert: nodeLabelsTo("agent.nodeLabels.postReboot")},

		// What holds a reboot back.
		{Name: "blocking-pod-selector", Kind: KindStringArray, Paths: []string{"agent.blockers.podSelectors"},
			convert: (*migration).podSelectors},
		{Name: "prometheus-url", Kind: KindString, Paths: []string{"agent.blockers.prometheus.url"}, convert: (*migration).prometheus},
		{Name: "alert-filter-regexp", Kind: KindRegexp, Paths: []string{"agent.blockers.prometheus.alertFilterRegexp"},
			With: "prometheus-url"},
		{Name: "alert-filter-match-only", Kind: KindBool, Default: "false", Paths: []string{"agent.blockers.prometheus.alertFilterMatchOnly"},
			With: "prometheus-url"},
		{Name: "alert-firing-only", Kind: KindBool, Default: "false", Paths: []string{"agent.blockers.prometheus.alertFiringOnly"},
			With: "prometheus-url"},

		// Notifications.
		// agent.extraEnv: a URL kured reads from a Secret stays in it.
		{Name: "notify-url", Kind: KindString, Paths: []string{"agent.notify.urls", "agent.extraEnv"}, convert: (*migration).notifyURL},
		{Name: "slack-hook-url", Kind: KindString, Paths: []string{"agent.notify.urls"}, convert: (*migration).slackHookURL}, // as --notify-url
		{Name: "slack-username", Kind: KindString, Default: "kured",
			NoEquivalent: "kured no longer uses it: notifications go to --notify-url (shoutrrr), which names the sender itself",
			convert:      noEquivalentUnless("kured")},
		{Name: "slack-channel", Kind: KindString,
			NoEquivalent: "kured no longer uses it: notifications go to --notify-url (shoutrrr), which names the channel itself",
			convert:      noEquivalentUnless("")},
		{Name: "message-template-drain", Kind: KindString, Default: "Draining node %s",
			Paths:   []string{"agent.notify.messageTemplates.drain"},
			convert: messageTemplateTo("agent.notify.messageTemplates.drain", func(c *notify.Config, v string) { c.MessageTemplateDrain = v })},
		{Name: "message-template-reboot", Kind: KindString, Default: "Rebooting node %s",
			Paths:   []string{"agent.notify.messageTemplates.reboot"},
			convert: messageTemplateTo("agent.notify.messageTemplates.reboot", func(c *notify.Config, v string) { c.MessageTemplateReboot = v })},
		{Name: "message-template-uncordon", Kind: KindString, Default: "Node %s rebooted & uncordoned successfully!",
			Paths:   []string{"agent.notify.messageTemplates.uncordon"},
			convert: messageTemplateTo("agent.notify.messageTemplates.uncordon", func(c *notify.Config, v string) { c.MessageTemplateUncordon = v })},

		// Reporting.
		{Name: "annotate-nodes", Kind: KindBool, Default: "false",
			NoEquivalent: "nodepatch always records its cycle on the Node (nodepatch.io/phase, nodepatch.io/cycle-started, nodepatch.io/last-reboot, ...); it writes no weave.works/kured-* annotations",
			convert:      noEquivalentUnless("false")},
		{Name: "metrics-port", Kind: KindInt, Default: "8080", Paths: []string{"metrics.port"}, convert: (*migration).metricsPort},
		{Name: "metrics-host", Kind: KindString,
			NoEquivalent: "the chart serves metrics on every address of the pod (--metrics-address=:metrics.port); its probes and Service need that",
			convert:      noEquivalentUnless("")},
		{Name: "log-format", Kind: KindString, Default: "text", Paths: []string{"agent.logFormat"}, convert: (*migration).logFormat},
		{Name: "debug", Kind: KindBool, Default: "false",
			NoEquivalent: "nodepatch has no debug log level; its Events and metrics say what it decides and why",
			convert:      noEquivalentUnless("false")},
		{Name: "kubeconfig", Kind: KindString,
			NoEquivalent: "the chart runs the agent in-cluster; a kubeconfig file needs a volume of your own and agent.extraArgs --kubeconfig",
			convert:      noEquivalentUnless("")},
	}
}

// flagIndex looks a kured flag up by name.
func flagIndex(flags []Flag) map[string]Flag {
	index := make(map[string]Flag, len(flags))
	for _, f := range flags {
		index[f.Name] = f
	}
	return index
}
