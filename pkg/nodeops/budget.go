package nodeops

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedpolicyv1 "k8s.io/client-go/kubernetes/typed/policy/v1"
)

// Retrying a refused eviction: kubectl's drain retries every
// EvictErrorRetryDelay. A budget that allows no disruption changes when one of
// its pods turns ready again, which its status tells at once, so the agent
// watches the budget and lets the drain retry as soon as it allows one, still
// through the eviction API. A refusal that names no budget (API priority and
// fairness) waits the plain delay.
const (
	// evictRetryDelay is the drain helper's own pause after a refusal: the
	// budget has been waited for by then.
	evictRetryDelay = 50 * time.Millisecond
	// refusedRetryDelay is the wait after a refusal no budget explains.
	refusedRetryDelay = time.Second
	// budgetWatchLimit bounds one wait for a budget, in case its change was
	// missed: the eviction is then simply tried again.
	budgetWatchLimit = 30 * time.Second
)

// budgetWaiting is the client the drain evicts through: a refused eviction
// returns only once the budget that refused it allows a disruption again.
type budgetWaiting struct {
	kubernetes.Interface
	wait func(ctx context.Context, pod *corev1.Pod) // test hook; nil: waitForBudget
}

func (c budgetWaiting) PolicyV1() typedpolicyv1.PolicyV1Interface {
	return budgetWaitingPolicy{PolicyV1Interface: c.Interface.PolicyV1(), client: c}
}

type budgetWaitingPolicy struct {
	typedpolicyv1.PolicyV1Interface
	client budgetWaiting
}

func (p budgetWaitingPolicy) Evictions(namespace string) typedpolicyv1.EvictionInterface {
	return budgetWaitingEvictions{EvictionInterface: p.PolicyV1Interface.Evictions(namespace), client: p.client}
}

type budgetWaitingEvictions struct {
	typedpolicyv1.EvictionInterface
	client budgetWaiting
}

// Evict evicts; when a budget refuses, it waits for that budget before it
// returns the refusal, which the drain then retries.
func (e budgetWaitingEvictions) Evict(ctx context.Context, eviction *policyv1.Eviction) error {
	err := e.EvictionInterface.Evict(ctx, eviction)
	if !apierrors.IsTooManyRequests(err) {
		return err
	}
	if !apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause) {
		sleep(ctx, refusedRetryDelay)
		return err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: eviction.Namespace, Name: eviction.Name}}
	if e.client.wait != nil {
		e.client.wait(ctx, pod)
		return err
	}
	if werr := waitForBudget(ctx, e.client.Interface, pod); werr != nil && ctx.Err() == nil {
		sleep(ctx, refusedRetryDelay) // the budget could not be watched: back to a plain retry
	}
	return err
}

// errNoBlockingBudget: no budget of the pod allows zero disruptions now.
var errNoBlockingBudget = errors.New("no budget of the pod allows zero disruptions")

// waitForBudget waits until the budget that blocks pod allows a disruption, it
// is gone, ctx ends or budgetWatchLimit passes.
func waitForBudget(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) error {
	live, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	pdbs, err := client.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing the budgets of namespace %s: %w", pod.Namespace, err)
	}
	blocking := ""
	for _, pdb := range pdbs.Items {
		if selects(pdb, *live) && pdb.Status.DisruptionsAllowed < 1 {
			blocking = pdb.Name
			break
		}
	}
	if blocking == "" {
		return errNoBlockingBudget
	}
	ctx, cancel := context.WithTimeout(ctx, budgetWatchLimit)
	defer cancel()
	return watchUntilAllowed(ctx, client.PolicyV1().PodDisruptionBudgets(pod.Namespace), blocking)
}

// watchUntilAllowed reads the budget and watches it from that version until it
// allows a disruption or is deleted. A watch that ends early ends the wait
// too: the eviction is tried again, and refused again if need be.
func watchUntilAllowed(ctx context.Context, budgets typedpolicyv1.PodDisruptionBudgetInterface, name string) error {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	list, err := budgets.List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		return fmt.Errorf("reading budget %s: %w", name, err)
	}
	if len(list.Items) == 0 || list.Items[0].Status.DisruptionsAllowed > 0 {
		return nil
	}
	w, err := budgets.Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: list.ResourceVersion})
	if err != nil {
		return fmt.Errorf("watching budget %s: %w", name, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Deleted || ev.Type == watch.Error {
				return nil
			}
			if pdb, isPDB := ev.Object.(*policyv1.PodDisruptionBudget); isPDB && pdb.Status.DisruptionsAllowed > 0 {
				return nil
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
