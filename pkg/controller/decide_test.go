package controller

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func stamp(t time.Time) string { return t.Format(time.RFC3339) }

// kubeNode is a Ready node with the given nodepatch annotations.
func kubeNode(name string, annotations map[string]string, change ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}, Annotations: annotations},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	for _, c := range change {
		c(n)
	}
	return n
}

func needs(minutesAgo int) map[string]string {
	return map[string]string{state.AnnotationNeedSince: stamp(t0.Add(-time.Duration(minutesAgo) * time.Minute))}
}

func settings(max string) Settings {
	q, _ := policy.ParseQuantity(max)
	return Settings{Rules: policy.Rules{MaxUnavailable: q, ControlPlane: policy.ControlPlaneLast}, AdmissionTimeout: 5 * time.Minute}
}

func TestDecide(t *testing.T) {
	t.Run("admits the oldest need within the limit", func(t *testing.T) {
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", needs(1)), kubeNode("b", needs(5))}})
		require.Equal(t, []string{"b"}, act.Admit)
		require.Equal(t, []policy.Hold{{Node: "a", Rule: policy.RuleMaxUnavailable}}, act.Plan.Held)
		require.Equal(t, 1, act.Limit)
		require.Equal(t, t0.Add(-5*time.Minute), act.OldestNeed)
	})
	t.Run("an admission counts as in a cycle", func(t *testing.T) {
		admitted := needs(5)
		admitted[state.AnnotationAdmitted] = stamp(t0)
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", needs(1)), kubeNode("b", admitted)}})
		require.Empty(t, act.Admit)
		require.Equal(t, 1, act.Phases["Admitted"])
	})
	t.Run("an admission not yet in the cache counts too", func(t *testing.T) {
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", needs(1)), kubeNode("b", needs(5))},
			Pending: map[string]bool{"b": true}})
		require.Empty(t, act.Admit, "admitted twice while the cache lagged")
	})
	t.Run("a node in a phase counts", func(t *testing.T) {
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{
			kubeNode("a", needs(1)), kubeNode("b", map[string]string{state.AnnotationPhase: "Rebooting"})}})
		require.Empty(t, act.Admit)
		require.Equal(t, 1, act.Phases["Rebooting"])
	})
	t.Run("paused: nobody is admitted", func(t *testing.T) {
		act := Decide(settings("2"), View{Now: t0, PauseReason: "freeze", Nodes: []*corev1.Node{kubeNode("a", needs(1))}})
		require.Empty(t, act.Admit)
		require.Equal(t, []policy.Hold{{Node: "a", Rule: RulePaused}}, act.Plan.Held)
	})
	t.Run("a stale admission is revoked", func(t *testing.T) {
		admitted := needs(20)
		admitted[state.AnnotationAdmitted] = stamp(t0.Add(-10 * time.Minute))
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", admitted)}})
		require.Equal(t, []string{"a"}, act.Revoke)
	})
	t.Run("an admission followed by a cycle is not revoked", func(t *testing.T) {
		admitted := map[string]string{state.AnnotationAdmitted: stamp(t0.Add(-10 * time.Minute)), state.AnnotationPhase: "Draining"}
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", admitted)}})
		require.Empty(t, act.Revoke)
	})
	t.Run("the failure budget pauses the rollout and names the nodes", func(t *testing.T) {
		s := settings("2")
		s.Budget = &policy.Budget{Failures: 2, Within: time.Hour}
		failures := map[string]time.Time{FailureKey("x", "1"): t0.Add(-time.Minute), FailureKey("y", "2"): t0.Add(-2 * time.Minute)}
		act := Decide(s, View{Now: t0, Failures: failures, Nodes: []*corev1.Node{kubeNode("a", needs(1))}})
		require.Empty(t, act.Admit)
		require.Equal(t, "failure budget spent: 2 failed cycles within 1h0m0s (y, x)", act.Pause)
		require.Equal(t, 2, act.BudgetUsed)
	})
	t.Run("cordoned by someone else counts; nodepatch's own cordon is its cycle", func(t *testing.T) {
		cordon := func(n *corev1.Node) { n.Spec.Unschedulable = true }
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("x", nil, cordon), kubeNode("a", needs(1))}})
		require.Empty(t, act.Admit)
	})
	t.Run("control plane from its label goes last", func(t *testing.T) {
		cp := func(n *corev1.Node) { n.Labels[LabelControlPlane] = "" }
		act := Decide(settings("3"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("cp", needs(9), cp), kubeNode("w", needs(1))}})
		require.Equal(t, []string{"w"}, act.Admit)
	})
	t.Run("priority from its annotation", func(t *testing.T) {
		urgent := needs(1)
		urgent[state.AnnotationPriority] = "10"
		act := Decide(settings("1"), View{Now: t0, Nodes: []*corev1.Node{kubeNode("a", needs(9)), kubeNode("b", urgent)}})
		require.Equal(t, []string{"b"}, act.Admit)
	})
}

func TestNoteFailures(t *testing.T) {
	failures := map[string]time.Time{}
	failed := kubeNode("a", map[string]string{state.AnnotationPhase: "Failed", state.AnnotationCycleStarted: "c1"})
	NoteFailures(failures, []*corev1.Node{failed}, t0)
	NoteFailures(failures, []*corev1.Node{failed}, t0.Add(time.Minute))
	require.Equal(t, map[string]time.Time{FailureKey("a", "c1"): t0}, failures, "one failed cycle counted twice")
	again := kubeNode("a", map[string]string{state.AnnotationPhase: "Failed", state.AnnotationCycleStarted: "c2"})
	NoteFailures(failures, []*corev1.Node{again}, t0.Add(time.Hour))
	require.Len(t, failures, 2, "a second failed cycle of the same node")
}

func TestSlimNodeKeepsWhatTheDecisionReads(t *testing.T) {
	n := kubeNode("a", map[string]string{state.AnnotationNeedSince: "x", "other.io/big": "y"})
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"big"}}}
	n.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	slim, err := SlimNode(n)
	require.NoError(t, err)
	s := slim.(*corev1.Node)
	require.Equal(t, map[string]string{state.AnnotationNeedSince: "x"}, s.Annotations)
	require.Empty(t, s.Status.Images)
	require.Empty(t, s.ManagedFields)
	require.True(t, ready(s))
}

func TestAssignSlots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		inUse map[int]bool
		admit []string
		want  map[string]int
	}{
		{name: "lowest free slots in admission order", limit: 4, admit: []string{"b", "a"},
			want: map[string]int{"b": 0, "a": 1}},
		{name: "slots in use are skipped", limit: 4, inUse: map[int]bool{0: true, 2: true}, admit: []string{"a", "b"},
			want: map[string]int{"a": 1, "b": 3}},
		{name: "no suggestion past the free slots", limit: 2, inUse: map[int]bool{1: true}, admit: []string{"a", "b"},
			want: map[string]int{"a": 0}},
		{name: "slots past the limit are never suggested", limit: 1, inUse: map[int]bool{0: true, 1: false}, admit: []string{"a"},
			want: map[string]int{}},
		{name: "nothing admitted", limit: 3, want: map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, AssignSlots(tc.limit, tc.inUse, tc.admit))
		})
	}
}

// TestDecideSuggestsSlotsNotInUse: a wave of admissions gets distinct slots,
// none held by a Lease, suggested to a pending admission, or to an admission
// the cache shows.
func TestDecideSuggestsSlotsNotInUse(t *testing.T) {
	earlier := needs(9)
	earlier[state.AnnotationAdmitted] = stamp(t0)
	earlier[state.AnnotationAdmittedSlot] = "1"
	nodes := []*corev1.Node{kubeNode("a", needs(3)), kubeNode("b", needs(2)), kubeNode("c", needs(1)), kubeNode("e", earlier)}
	done := kubeNode("d", nil)
	inCycle := kubeNode("f", map[string]string{state.AnnotationPhase: string(state.PhaseRebooting)})
	nodes = append(nodes, done, inCycle)
	act := Decide(settings("6"), View{Now: t0, Nodes: nodes, SlotHolders: map[int]string{0: "f", 2: "d", 3: "gone"},
		SuggestedSlots: map[int]bool{4: true}})
	require.Equal(t, []string{"a", "b", "c"}, act.Admit)
	require.Equal(t, map[string]int{"a": 2, "b": 5}, act.Slots,
		"slot 0 held by f in a cycle, 1 suggested to e, 2 held by d whose cycle ended (free soon), 3 by a holder "+
			"that is no Node the cache shows, 4 suggested to a pending admission; c gets none")
}
