package nodeops

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodepatch/nodepatch/pkg/state"
)

func newNode(t *testing.T, objects ...runtime.Object) (*Node, *fake.Clientset) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Annotations: map[string]string{}}}
	client := fake.NewClientset(append([]runtime.Object{node}, objects...)...)
	// No Eviction subresource (withEvictions adds it): the drain deletes.
	client.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods", Kind: "Pod"}}}}
	return &Node{Client: client, Name: "node-a"}, client
}

// TestUpdateRetriesOnAFreshCopy: after a conflict the mutation is applied to a
// fresh read, so an operator's concurrent annotation is kept.
func TestUpdateRetriesOnAFreshCopy(t *testing.T) {
	n, client := newNode(t)
	conflicted := false
	client.PrependReactor("update", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicted {
			return false, nil, nil
		}
		conflicted = true
		// The operator blocks the node between the agent's read and its write.
		current, err := client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("nodes"), "", "node-a")
		require.NoError(t, err)
		blocked := current.(*corev1.Node).DeepCopy()
		blocked.Annotations[state.AnnotationBlockReboot] = "db migration"
		require.NoError(t, client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("nodes"), blocked, ""))
		return true, nil, apierrors.NewConflict(corev1.Resource("nodes"), "node-a", errors.New("changed"))
	})
	var sawBlock bool
	written, err := n.Update(context.Background(), func(node *corev1.Node) error {
		sawBlock = node.Annotations[state.AnnotationBlockReboot] != ""
		AddTaint(node, time.Now())
		node.Spec.Unschedulable = true
		return nil
	})
	require.NoError(t, err)
	require.True(t, sawBlock, "the retry did not read the node again")
	require.Equal(t, "db migration", written.Annotations[state.AnnotationBlockReboot])
	require.True(t, HasTaint(written))
}

// TestUpdateFromTheCache: a current cached copy saves the GET; a stale one
// (a conflict) or a refusal by mutate is judged again on the API server's
// copy; any other error of the cached write is the answer, so that a write
// that may have landed is not applied twice.
func TestUpdateFromTheCache(t *testing.T) {
	cachedCopy := func(client *fake.Clientset) func() (*corev1.Node, error) {
		return func() (*corev1.Node, error) {
			obj, err := client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("nodes"), "", "node-a")
			if err != nil {
				return nil, err
			}
			return obj.(*corev1.Node), nil
		}
	}
	verbs := func(client *fake.Clientset) []string {
		var out []string
		for _, a := range client.Actions() {
			out = append(out, a.GetVerb())
		}
		return out
	}
	failOnce := func(client *fake.Clientset, err error) {
		failed := false
		client.PrependReactor("update", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			if failed {
				return false, nil, nil
			}
			failed = true
			return true, nil, err
		})
	}
	conflict := apierrors.NewConflict(corev1.Resource("nodes"), "node-a", errors.New("changed"))
	for _, tc := range []struct {
		name    string
		setup   func(*fake.Clientset)
		refuse  bool // mutate refuses its first copy
		verbs   []string
		wantErr bool
	}{
		{name: "current cache: one write", verbs: []string{"update"}},
		{name: "stale cache: read and write again", setup: func(c *fake.Clientset) { failOnce(c, conflict) },
			verbs: []string{"update", "get", "update"}},
		{name: "refusal on the cache: judged on the API server's copy", refuse: true, verbs: []string{"get", "update"}},
		{name: "server error: no second write", setup: func(c *fake.Clientset) { failOnce(c, apierrors.NewInternalError(errors.New("etcd"))) },
			verbs: []string{"update"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, client := newNode(t)
			n.Cached = cachedCopy(client)
			if tc.setup != nil {
				tc.setup(client)
			}
			client.ClearActions()
			calls := 0
			_, err := n.Update(context.Background(), func(node *corev1.Node) error {
				calls++
				if tc.refuse && calls == 1 {
					return errors.New("not from this copy")
				}
				AddTaint(node, time.Now())
				return nil
			})
			require.Equal(t, tc.wantErr, err != nil, "error: %v", err)
			require.Equal(t, tc.verbs, verbs(client))
		})
	}
}

func TestTaintIsOursAlone(t *testing.T) {
	node := &corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoExecute}}}}
	AddTaint(node, time.Now())
	AddTaint(node, time.Now())
	require.Len(t, node.Spec.Taints, 2, "the taint was added twice")
	RemoveTaint(node)
	require.Equal(t, []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoExecute}}, node.Spec.Taints)
}

func TestSetAgentStateRemovesWhatIsNotSet(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		state.AnnotationPhase: "Draining", state.AnnotationBlockReboot: "keep", "example.com/x": "keep"}}}
	SetAgentState(node, state.Node{LastReboot: time.Unix(100, 0)})
	require.Equal(t, map[string]string{state.AnnotationBlockReboot: "keep", "example.com/x": "keep",
		state.AnnotationLastReboot: "1970-01-01T00:01:40Z"}, node.Annotations)
}

func pod(name string) *corev1.Pod {
	controller := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: &controller}}},
		Spec: corev1.PodSpec{NodeName: "node-a"},
	}
}

// TestDrainTimeoutIsTyped: both ways a drain runs out of time — evictions
// refused by a PodDisruptionBudget, and evicted pods slow to go — end in
// ErrDrainTimeout, whatever kubectl's words for each.
func TestDrainTimeoutIsTyped(t *testing.T) {
	opts := DrainOptions{Timeout: 1500 * time.Millisecond, GracePeriod: -1, DeleteEmptyDirData: true}

	t.Run("evictions refused", func(t *testing.T) {
		n, client := newNode(t, pod("web-0"))
		withEvictions(client)
		client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
			if action.GetSubresource() != "eviction" {
				return false, nil, nil
			}
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 1)
		})
		err := n.Drain(context.Background(), opts)
		require.ErrorIs(t, err, ErrDrainTimeout)
	})

	t.Run("pods slow to terminate", func(t *testing.T) {
		n, client := newNode(t, pod("web-0"))
		client.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, nil // accepted; the pod lingers, terminating
		})
		err := n.Drain(context.Background(), opts)
		require.ErrorIs(t, err, ErrDrainTimeout)
	})

	t.Run("the agent stopping is not a timeout", func(t *testing.T) {
		n, client := newNode(t, pod("web-0"))
		client.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := n.Drain(ctx, opts)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrDrainTimeout)
	})

	t.Run("a drain that finishes", func(t *testing.T) {
		n, _ := newNode(t, pod("web-0"))
		require.NoError(t, n.Drain(context.Background(), opts))
	})
}

// withEvictions makes the fake's discovery offer the Eviction subresource, so
// that the drain evicts rather than deletes.
func withEvictions(client *fake.Clientset) {
	client.Resources = []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}},
		{GroupVersion: "policy/v1", APIResources: []metav1.APIResource{{Name: "poddisruptionbudgets", Kind: "PodDisruptionBudget"}}},
	}
}
