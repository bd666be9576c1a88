package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const workloadNamespace = "default"

// addWorkload puts one pod on every node, owned by a ReplicaSet of zero
// replicas so that drain treats it as managed and nothing brings it back:
// every drain has an eviction to make.
func (r *run) addWorkload(ctx context.Context) error {
	rs, err := r.createReplicaSet(ctx, "app")
	if err != nil {
		return err
	}
	for _, n := range r.cfg.nodes {
		if err := r.createPod(ctx, rs, "app-"+n, n); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) createReplicaSet(ctx context.Context, app string) (*appsv1.ReplicaSet, error) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: workloadNamespace},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
	created, err := r.client.AppsV1().ReplicaSets(workloadNamespace).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create replica set %s: %w", app, err)
	}
	return created, nil
}

func (r *run) createPod(ctx context.Context, rs *appsv1.ReplicaSet, name, node string) error {
	app := rs.Spec.Selector.MatchLabels["app"]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: workloadNamespace, Labels: map[string]string{"app": app},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "app"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	if _, err := r.client.CoreV1().Pods(workloadNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s on %s: %w", name, node, err)
	}
	return nil
}

// blockEvictions puts a pod on node under a PodDisruptionBudget that allows
// no disruption, so that drains of node fail until unblockEvictions. Each
// step is retried: the API server may be restarting.
func (r *run) blockEvictions(ctx context.Context, app, node string) error {
	var rs *appsv1.ReplicaSet
	err := r.retry(ctx, "create replica set "+app, func() error {
		var err error
		if rs, err = r.createReplicaSet(ctx, app); apierrors.IsAlreadyExists(errors.Unwrap(err)) {
			rs, err = r.client.AppsV1().ReplicaSets(workloadNamespace).Get(ctx, app, metav1.GetOptions{})
		}
		return err
	})
	if err != nil {
		return err
	}
	err = r.retry(ctx, "create pod "+app+"-0", func() error {
		if err := r.createPod(ctx, rs, app+"-0", node); !apierrors.IsAlreadyExists(errors.Unwrap(err)) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The API server ignores budgets for pods that do not run yet.
	err = r.retry(ctx, "pod "+app+"-0 running", func() error {
		pod, err := r.client.CoreV1().Pods(workloadNamespace).Get(ctx, app+"-0", metav1.GetOptions{})
		if err == nil && pod.Status.Phase != corev1.PodRunning {
			err = fmt.Errorf("phase %s", pod.Status.Phase)
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.retry(ctx, "create budget "+app, func() error { return r.createBudget(ctx, app) })
}

// createBudget makes a budget over app allowing no disruption, with the
// status the disruption controller (which does not run here) would give it.
func (r *run) createBudget(ctx context.Context, app string) error {
	budgets := r.client.PolicyV1().PodDisruptionBudgets(workloadNamespace)
	zero := intstr.FromInt32(0)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: workloadNamespace},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
	}
	created, err := budgets.Create(ctx, pdb, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = budgets.Get(ctx, app, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("create budget %s: %w", app, err)
	}
	created.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: created.Generation,
		DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	if _, err := budgets.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("budget %s status: %w", app, err)
	}
	return nil
}

// unblockEvictions deletes the budget: the operator gives up on it.
func (r *run) unblockEvictions(ctx context.Context, app string) error {
	return r.retry(ctx, "delete budget "+app, func() error {
		err := r.client.PolicyV1().PodDisruptionBudgets(workloadNamespace).Delete(ctx, app, metav1.DeleteOptions{})
		return ignoreNotFound(err)
	})
}

// operatorCordon cordons node the way an operator does (kubectl cordon), and
// has the watcher guard it.
func (r *run) operatorCordon(ctx context.Context, node string) error {
	err := r.patchNode(ctx, node, `{"spec":{"unschedulable":true}}`)
	if err != nil {
		return err
	}
	return r.watcher.ProtectCordon(ctx, node)
}

// retryTimeout bounds the retries of an operator's action while the API
// server restarts.
const retryTimeout = 90 * time.Second
