package nodeops

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// budgetRefusal is the API server's answer to an eviction a budget refuses.
func budgetRefusal() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 429, Reason: metav1.StatusReasonTooManyRequests,
		Message: "Cannot evict pod as it would violate the pod's disruption budget.",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause,
			Message: "The disruption budget web needs 1 healthy pods and has 1 currently"}}},
	}}
}

// TestRefusedEvictionWaitsForTheBudget: an eviction a budget refuses is tried
// again when the budget's status allows a disruption, not on a timer: the
// drain watches the budget, makes no attempt while it allows none, and
// finishes right after it allows one.
func TestRefusedEvictionWaitsForTheBudget(t *testing.T) {
	web := pod("web-0")
	web.Labels = map[string]string{"app": "web"}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	n, client := newNode(t, web, pdb)
	withEvictions(client)
	pdbs := policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets")
	var attempts atomic.Int32
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		attempts.Add(1)
		current, err := client.Tracker().Get(pdbs, "default", "web")
		if err != nil {
			return true, nil, err
		}
		if current.(*policyv1.PodDisruptionBudget).Status.DisruptionsAllowed < 1 {
			return true, nil, budgetRefusal()
		}
		return true, nil, client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "default", "web-0")
	})
	watching := make(chan struct{}, 10)
	client.PrependWatchReactor("poddisruptionbudgets", func(k8stesting.Action) (bool, watch.Interface, error) {
		watching <- struct{}{}
		return false, nil, nil
	})

	done := make(chan error, 1)
	go func() {
		done <- n.Drain(context.Background(), DrainOptions{Timeout: time.Minute, GracePeriod: -1})
	}()
	select {
	case <-watching:
	case err := <-done:
		t.Fatalf("the drain ended before the budget allowed a disruption: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the drain never watched the budget that refused its eviction")
	}
	require.Equal(t, int32(1), attempts.Load(), "evictions tried again while the budget allowed none")

	allowed := pdb.DeepCopy()
	allowed.Status.DisruptionsAllowed = 1
	require.NoError(t, client.Tracker().Update(pdbs, allowed, "default"))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the drain did not go on once the budget allowed a disruption")
	}
	require.Equal(t, int32(2), attempts.Load(), "one refused eviction, one allowed")
}

// TestRefusalWithoutABudgetIsRetried: a 429 that names no budget (API
// priority and fairness) is simply retried after a pause.
func TestRefusalWithoutABudgetIsRetried(t *testing.T) {
	n, client := newNode(t, pod("web-0"))
	withEvictions(client)
	var attempts atomic.Int32
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if attempts.Add(1) == 1 {
			return true, nil, apierrors.NewTooManyRequests("too many requests, please try again later", 1)
		}
		return true, nil, client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "default", "web-0")
	})
	require.NoError(t, n.Drain(context.Background(), DrainOptions{Timeout: time.Minute, GracePeriod: -1}))
	require.Equal(t, int32(2), attempts.Load())
}
