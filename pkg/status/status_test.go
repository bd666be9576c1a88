package status

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/state"
)

func TestSummarizeTheRollout(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	node := func(name string, ann map[string]string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	}
	holder := "c"
	leases := []coordinationv1.Lease{
		{ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock", Annotations: map[string]string{
			lock.AnnotationLimit: "2", lock.AnnotationLimitGeneration: "0", lock.AnnotationLimitSource: lock.LimitSourceController}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock-0"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}},
	}
	nodes := []corev1.Node{
		node("a", map[string]string{state.AnnotationNeedSince: at(-time.Minute)}),
		node("b", map[string]string{state.AnnotationNeedSince: at(-time.Hour)}),
		node("c", map[string]string{state.AnnotationPhase: "Rebooting"}),
		node("d", map[string]string{state.AnnotationAdmitted: at(0), state.AnnotationNeedSince: at(-2 * time.Hour)}),
		node("e", map[string]string{state.AnnotationLastReboot: at(-time.Hour)}),
		node("f", map[string]string{state.AnnotationPhase: "Failed"}),
		node("g", map[string]string{state.AnnotationNeedSince: at(-time.Second), state.AnnotationPriority: "5"}),
	}
	r := Summarize(leases, nodes, "nodepatch", "nodepatch-lock", now)
	require.Equal(t, map[string]int{"pending": 3, "in progress": 2, "done": 1, "failed": 1}, r.Rollout.Counts)
	var order []string
	for _, q := range r.Rollout.Queue {
		order = append(order, q.Node)
	}
	require.Equal(t, []string{"g", "b", "a"}, order, "priority first, then the oldest need")
	require.Equal(t, []string{"d"}, r.Rollout.Admitted)
	require.Equal(t, 2, r.Lock.Limit)
	require.Equal(t, "rollout controller", r.Lock.LimitSource)
	require.True(t, r.Nodes[2].HoldsLock)

	var out bytes.Buffer
	require.NoError(t, r.Print(&out, now))
	for _, want := range []string{"rollout: 3 pending, 2 in progress, 1 done, 1 failed; limit 2 (set by the rollout controller)",
		"admitted, starting: d", "next: g (waiting 1s, priority 5)", "#2: b (waiting 1h0m0s)"} {
		require.Contains(t, out.String(), want)
	}
}

// TestStatusSaysWhatHoldsEachNode: the agent's hold, the gate it waits at and
// a quarantine each get their line.
func TestStatusSaysWhatHoldsEachNode(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	nodes := []corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Annotations: map[string]string{
			state.AnnotationHeld: "firing alerts: NodeDiskFull"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", Annotations: map[string]string{state.AnnotationPhase: "Draining",
			state.AnnotationCycleStarted: now.Add(-time.Minute).Format(time.RFC3339), state.AnnotationWaitingForGate: "ticket"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: map[string]string{state.LabelQuarantined: "true"}}},
	}
	r := Summarize(nil, nodes, "nodepatch", "nodepatch-lock", now)
	var out bytes.Buffer
	require.NoError(t, r.Print(&out, now))
	for _, want := range []string{"held: firing alerts: NodeDiskFull", "waiting for approval ticket: nodepatch approve b ticket",
		"quarantined after a drain that did not finish"} {
		require.Contains(t, out.String(), want)
	}
	require.NotContains(t, out.String(), "POOL", "no pools, no pool column")
	require.Equal(t, "ticket", r.Nodes[1].WaitingForGate)
	require.True(t, r.Nodes[2].Quarantined)
}

// TestStatusNamesTheControllersRuleAndEstimates: the rule that holds each
// waiting node comes from the policy the controller published, and the finish
// is estimated from the nodes' recorded cycles.
func TestStatusNamesTheControllersRuleAndEstimates(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	ready := corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}
	node := func(name string, ann map[string]string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Status: ready}
	}
	leases := []coordinationv1.Lease{{ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock", Annotations: map[string]string{
		lock.AnnotationLimit: "1", lock.AnnotationLimitGeneration: "0", lock.AnnotationLimitSource: lock.LimitSourceController,
		lock.AnnotationRolloutPolicy: "max-unavailable=1;control-plane=last"}}}}
	nodes := []corev1.Node{
		node("a", map[string]string{state.AnnotationNeedSince: at(-time.Minute)}),
		node("b", map[string]string{state.AnnotationNeedSince: at(-time.Hour)}),
		node("c", map[string]string{state.AnnotationPhase: "Rebooting", state.AnnotationCycleDurations: "500"}),
		node("e", map[string]string{state.AnnotationLastReboot: at(-time.Hour), state.AnnotationCycleDurations: "700,100"}),
	}
	r := Summarize(leases, nodes, "nodepatch", "nodepatch-lock", now)
	require.Equal(t, "max-unavailable", r.Rollout.Queue[0].Rule)
	require.Equal(t, 10*time.Minute, r.Rollout.CycleTime)
	require.Equal(t, 2, r.Rollout.Waves)
	var out bytes.Buffer
	require.NoError(t, r.Print(&out, now))
	for _, want := range []string{"next: b (waiting 1h0m0s; held by max-unavailable)",
		"estimated finish: 2026-12-01T10:20:00Z (2 rounds of about 10m0s"} {
		require.Contains(t, out.String(), want)
	}

	leases[0].Annotations[state.AnnotationPause] = "change freeze"
	r = Summarize(leases, nodes, "nodepatch", "nodepatch-lock", now)
	require.Equal(t, "paused", r.Rollout.Queue[0].Rule)
}

// TestStatusShowsPools: each node's pool and the rule of its pool that holds
// it, from the policy the controller published, and a pools ConfigMap the
// controller could not use.
func TestStatusShowsPools(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	ready := corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}
	node := func(name, pool string, ann map[string]string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann, Labels: map[string]string{"nodepool": pool}}, Status: ready}
	}
	leases := []coordinationv1.Lease{{ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock", Annotations: map[string]string{
		lock.AnnotationRolloutPolicy:      `max-unavailable=5;control-plane=last;pool={"name":"gpu","selector":"nodepool=gpu","maxUnavailable":1}`,
		lock.AnnotationRolloutPolicyError: `ConfigMap nodepatch/nodepatch-pools: key "gpu" value "maxUnavailable: 0": ...`}}}}
	nodes := []corev1.Node{
		node("g1", "gpu", map[string]string{state.AnnotationPhase: "Rebooting"}),
		node("g2", "gpu", map[string]string{state.AnnotationNeedSince: at(-time.Minute)}),
		node("w1", "", map[string]string{state.AnnotationNeedSince: at(-time.Minute)}),
	}
	r := Summarize(leases, nodes, "nodepatch", "nodepatch-lock", now)
	require.Equal(t, []string{"gpu (nodepool=gpu): max-unavailable 1"}, r.Lock.Pools)
	require.Equal(t, "gpu", r.Nodes[0].Pool)
	require.Empty(t, r.Nodes[2].Pool, "a node in no pool")
	require.Equal(t, Waiting{Node: "g2", Since: now.Add(-time.Minute), Pool: "gpu", Rule: "pool gpu: max-unavailable"}, r.Rollout.Queue[0])
	require.Empty(t, r.Rollout.Queue[1].Rule, "the default policy admits w1")
	var out bytes.Buffer
	require.NoError(t, r.Print(&out, now))
	for _, want := range []string{"pool gpu (nodepool=gpu): max-unavailable 1",
		`pools ConfigMap INVALID, the rollout controller keeps the last good pools: ConfigMap nodepatch/nodepatch-pools: key "gpu"`,
		"NODE  POOL  PHASE", "g1    gpu   Rebooting", "w1    -     Idle",
		"next: g2 (waiting 1m0s, pool gpu; held by pool gpu: max-unavailable)"} {
		require.Contains(t, out.String(), want)
	}
}
