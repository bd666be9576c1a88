// Package prom asks a Prometheus server, over its HTTP API, whether a reboot
// must wait: because of active alerts (AlertChecker), because a PromQL query
// has a result (QueryChecker, --block-while-query), or because the node is not
// healthy yet (HealthChecker, --health-query).
//
// # Alerts
//
// AlertChecker reads /api/v1/alerts, the alerts Prometheus's own rules hold
// active (pending or firing), and follows kured's rules for which of them
// block:
//
//   - An alert without an alertname label never blocks (kured reads the
//     ALERTS series and skips those). An inactive one never blocks; one in
//     a state Prometheus does not document blocks unless
//     --alert-firing-only (the safe side).
//   - With --alert-firing-only, pending alerts do not block; only firing ones.
//   - With --alert-filter-regexp, an alert whose name the regexp matches is
//     ignored. The regexp is Go's, unanchored, as in kured: "Watch" matches
//     "Watchdog"; write "^Watchdog$" for the one name.
//   - With --alert-filter-match-only as well, the filter turns round: only
//     alerts whose name matches block. Without a regexp it changes nothing
//     (kured's behaviour): every alert blocks.
//   - --alert-label-matchers (nodepatch's addition, not kured's) keeps only
//     the alerts that match every matcher, in PromQL's syntax:
//     severity="critical",node=~"$NODE". $NODE stands for this node's name;
//     in a regexp it stands for the name as a literal (its dots are not
//     wildcards). As in PromQL, a missing label has the value "", regexps are
//     fully anchored, and "." matches a newline too.
//
// There is no built-in exception for an always-firing alert such as
// Watchdog: as in kured it blocks unless the filter or the matchers leave it
// out.
//
// The detail names the blocking alerts by name, sorted and de-duplicated,
// listing at most MaxListed (see AlertsDetail).
//
// # Queries
//
// QueryChecker runs an instant query; it blocks while the query returns at
// least one series (an instant or range vector), or a scalar that is neither
// zero nor NaN. HealthChecker runs an instant query and calls the node
// healthy when it returns at least one series and every sample is neither
// zero nor NaN: what a comparison with bool (up{job="x"} == bool 1) and a
// plain filter (up{job="x"} == 1) both mean by "true". No series is
// unhealthy: a target that is gone must not pass the gate.
//
// # Errors, and why an unreachable Prometheus blocks
//
// Every request is bounded by ClientConfig.Timeout (DefaultTimeout unless
// set) as well as by the caller's context. Errors are typed:
//
//   - ErrUnreachable: no answer, a timeout, or a 5xx. The caller should hold
//     the reboot (reason prometheus-unreachable): not knowing whether an alert
//     fires is not knowing that a reboot is safe, and a Prometheus that is
//     down is often a sign the cluster is not in a state to lose a node.
//   - ErrBadQuery: Prometheus rejected the query (bad_data), could not
//     evaluate it (execution), or it gives a string rather than series. A
//     configuration error; it holds as well.
//   - ErrBadResponse: an answer that is not a Prometheus API answer (a 404 for
//     a wrong path, 401/403 from a proxy, a body that does not decode, a
//     result of an unexpected type). It holds as well.
//
// When the caller's own context ends, the error wraps its context.Canceled
// or context.DeadlineExceeded and none of the above: the caller is leaving.
package prom
