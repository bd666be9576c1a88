package rollout

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/pkg/status"
)

// node is a Ready Node carrying the agent's state st and the annotations more.
func node(name string, st state.Node, more map[string]string) corev1.Node {
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	for k, v := range st.AgentAnnotations() {
		if v != nil {
			n.Annotations[k] = *v
		}
	}
	for k, v := range more {
		n.Annotations[k] = v
	}
	return n
}

// midRollout is six nodes under a controller at max-unavailable 2: two out
// (draining, rebooting), two in its queue (node-03 reported its need first),
// one blocked by the operator, one done.
func midRollout(t *testing.T) frame {
	t.Helper()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	client := fake.NewClientset()
	rules := policy.Rules{MaxUnavailable: policy.Quantity{Value: 2}, ControlPlane: policy.ControlPlaneLast}
	require.NoError(t, lock.SetControllerLimit(t.Context(), client.CoordinationV1().Leases(namespace), namespace, lockName, 2, rules.String()))
	leases, err := client.CoordinationV1().Leases(namespace).List(t.Context(), metav1.ListOptions{LabelSelector: lock.Selector(lockName).String()})
	require.NoError(t, err)

	draining := node("node-00", state.Node{Phase: state.PhaseDraining, CordonedByUs: true, CycleStarted: now.Add(-2 * time.Second)}, nil)
	draining.Spec.Unschedulable = true
	rebooting := node("node-01", state.Node{Phase: state.PhaseRebooting, CordonedByUs: true, CycleStarted: now.Add(-4 * time.Second)}, nil)
	rebooting.Spec.Unschedulable = true
	rebooting.Status.Conditions[0].Status = corev1.ConditionFalse
	nodes := []corev1.Node{
		draining, rebooting,
		node("node-02", state.Node{NeedSince: now.Add(-3 * time.Second)}, nil),
		node("node-03", state.Node{NeedSince: now.Add(-5 * time.Second)}, nil),
		node("node-04", state.Node{}, map[string]string{state.AnnotationBlockReboot: "database migration"}),
		node("node-05", state.Node{LastReboot: now.Add(-10 * time.Second)}, nil),
	}
	return frame{
		now: now, report: status.Summarize(leases.Items, nodes, namespace, lockName, now),
		plan: publishedPlan(rules.String(), nodes, now),
		hosts: map[string]hostState{
			"node-00": {required: true}, "node-01": {required: true, down: true}, "node-02": {required: true},
			"node-03": {required: true}, "node-04": {required: true}, "node-05": {reboots: 1},
		},
	}
}

func TestRowsShowTheControllersQueueAndHolds(t *testing.T) {
	rows, done := midRollout(t).rows()
	require.Equal(t, 1, done)
	type shown struct{ node, phase, queue, why string }
	var got []shown
	for _, r := range rows {
		got = append(got, shown{r.node, r.phase, r.queue, r.why})
	}
	require.Equal(t, []shown{
		{"node-00", "Draining", "", ""},
		{"node-01", "Rebooting (down)", "", ""},
		{"node-02", "Waiting", "#2", "limit: 2 of 2 nodes out"},
		{"node-03", "Waiting", "#1 next", "limit: 2 of 2 nodes out"},
		{"node-04", "Needs reboot", "", "blocked: database migration"},
		{"node-05", "Done", "", ""},
	}, got)
}

func TestHeadlineAndQueueLine(t *testing.T) {
	f := midRollout(t)
	require.Equal(t, "2 pending, 2 in progress, 1 done; 2 of 2 nodes out (limit set by the rollout controller)", f.headline())
	require.Equal(t, "node-03 next, node-02 (limit: 2 of 2 nodes out)", f.queueLine())
}

func TestPausedRolloutSaysSo(t *testing.T) {
	f := midRollout(t)
	f.report.Lock.Paused = "change freeze"
	for i := range f.report.Rollout.Queue {
		f.report.Rollout.Queue[i].Rule = "paused"
	}
	require.Equal(t, "node-03 next, node-02 (paused: change freeze)", f.queueLine())
}

func TestPlainViewPrintsChangesOnly(t *testing.T) {
	f := midRollout(t)
	var out bytes.Buffer
	v := newView(&out, false, f.now.Add(-7*time.Second))
	rows, _ := f.rows()
	v.show(f, rows)
	first := out.String()
	require.Contains(t, first, "[     7s] node-04  Needs reboot ready=true cordoned=no: blocked: database migration\n")
	require.Contains(t, first, "[     7s] node-03  Waiting ready=true cordoned=no\n", "a queued node's hold is on the rollout line")
	require.Contains(t, first, "[     7s] rollout: 2 pending, 2 in progress, 1 done; 2 of 2 nodes out (limit set by the rollout controller); "+
		"queue: node-03 next, node-02 (limit: 2 of 2 nodes out)\n")
	out.Reset()
	v.show(f, rows)
	require.Empty(t, out.String(), "nothing changed, nothing printed")
}

func TestLiveTableHasTheQueueUnderTheNodes(t *testing.T) {
	f := midRollout(t)
	rows, _ := f.rows()
	text := table(f, rows, 7*time.Second)
	require.Contains(t, text, "node-03  Waiting          true  no           0                #1 next limit: 2 of 2 nodes out\n")
	require.Contains(t, text, "\nqueue:   node-03 next, node-02 (limit: 2 of 2 nodes out)\n")
}
