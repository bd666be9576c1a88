package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/nodepatch/nodepatch/pkg/kured"
)

// PodLister lists the pods bound to the agent's node, from the API server.
type PodLister interface {
	Pods(ctx context.Context) ([]corev1.Pod, error)
}

// PodBlocker holds a cycle while pods matching any of its selectors run on the
// node (kured's --blocking-pod-selector). Finished pods do not hold.
type PodBlocker struct {
	Pods      PodLister
	Selectors []labels.Selector
}

// Check names the blocking pods, or says it cannot list them (which holds too).
func (b PodBlocker) Check(ctx context.Context) []Block {
	pods, err := b.Pods.Pods(ctx)
	if err != nil {
		return []Block{{Reason: BlockPods, Detail: "cannot list the pods on the node, so cannot rule out a blocking pod: " + err.Error()}}
	}
	var names []string
	for _, p := range pods {
		if finished(p) {
			continue
		}
		if slices.ContainsFunc(b.Selectors, func(s labels.Selector) bool { return s.Matches(labels.Set(p.Labels)) }) {
			names = append(names, p.Namespace+"/"+p.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return []Block{{Reason: BlockPods, Detail: "blocking pods run on the node: " + listNames(names, 5)}}
}

// DetailChecker is a check outside the cluster that holds while it returns a
// detail (a firing alert, a query with a result); an error means it cannot tell.
type DetailChecker interface {
	Check(ctx context.Context) (string, error)
}

// ExternalBlocker holds with Reason while Checker finds something, and with
// UnreachableReason when Unreachable says its error is one of reaching it: the
// safe side of not knowing is not rebooting.
type ExternalBlocker struct {
	Reason, UnreachableReason string
	Checker                   DetailChecker
	Unreachable               func(error) bool
}

// Check asks the checker once.
func (b ExternalBlocker) Check(ctx context.Context) []Block {
	detail, err := b.Checker.Check(ctx)
	switch {
	case err != nil && b.Unreachable != nil && b.Unreachable(err):
		return []Block{{Reason: b.UnreachableReason, Detail: "holding while it cannot be asked: " + err.Error()}}
	case err != nil:
		return []Block{{Reason: b.Reason, Detail: "holding while the check fails: " + err.Error()}}
	case detail != "":
		return []Block{{Reason: b.Reason, Detail: detail}}
	}
	return nil
}

// HealthQuery is a health check outside the node (--health-query).
type HealthQuery interface {
	Healthy(ctx context.Context) (bool, string, error)
}

// HealthGate is the node's health after its reboot: its DaemonSet pods (when
// DaemonSets is set) and the pods matching ReadyPods are Ready, and Query, when
// set, says healthy.
type HealthGate struct {
	Pods       PodLister
	DaemonSets bool
	ReadyPods  labels.Selector // nil: none
	Query      HealthQuery     // nil: none
}

// Healthy names everything that is not healthy yet.
func (g HealthGate) Healthy(ctx context.Context) HealthView {
	var problems []string
	if g.DaemonSets || g.ReadyPods != nil {
		problems = append(problems, g.podProblems(ctx)...)
	}
	if g.Query != nil {
		ok, detail, err := g.Query.Healthy(ctx)
		switch {
		case err != nil:
			problems = append(problems, "the health query cannot be evaluated: "+err.Error())
		case !ok:
			problems = append(problems, "the health query says unhealthy: "+detail)
		}
	}
	if len(problems) > 0 {
		return HealthView{Detail: strings.Join(problems, "; ")}
	}
	return HealthView{Healthy: true}
}

func (g HealthGate) podProblems(ctx context.Context) []string {
	pods, err := g.Pods.Pods(ctx)
	if err != nil {
		return []string{"cannot list the pods on the node: " + err.Error()}
	}
	var notReady []string
	for _, p := range pods {
		if finished(p) || p.DeletionTimestamp != nil || podReady(p) {
			continue
		}
		if (g.DaemonSets && ownedByDaemonSet(p)) || (g.ReadyPods != nil && g.ReadyPods.Matches(labels.Set(p.Labels))) {
			notReady = append(notReady, p.Namespace+"/"+p.Name)
		}
	}
	if len(notReady) == 0 {
		return nil
	}
	return []string{"pods not Ready: " + listNames(notReady, 5)}
}

func finished(p corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ownedByDaemonSet(p corev1.Pod) bool {
	return slices.ContainsFunc(p.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Kind == "DaemonSet" })
}

// listNames joins the sorted names, at most max of them.
func listNames(names []string, max int) string {
	slices.Sort(names)
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}

// DaemonSetGetter reads one DaemonSet (kured's).
type DaemonSetGetter interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.DaemonSet, error)
}

// KuredBlocker holds a cycle while kured, running beside nodepatch, holds its
// own lock (the annotation on its DaemonSet, in kured's JSON, single- or
// multi-holder): two tools must not reboot nodes at the same time. A lock it
// cannot read holds too; a DaemonSet that is gone does not (kured was removed).
type KuredBlocker struct {
	DaemonSets DaemonSetGetter
	Name       string
	Annotation string
	Clock      func() time.Time
}

// Check reads kured's lock once.
func (b KuredBlocker) Check(ctx context.Context) []Block {
	ds, err := b.DaemonSets.Get(ctx, b.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return []Block{{Reason: BlockKuredLock, Detail: "cannot read kured's lock on DaemonSet " + b.Name + ": " + err.Error()}}
	}
	value, ok := ds.Annotations[b.Annotation]
	if !ok || value == "" {
		return nil
	}
	lock, err := kured.ParseNamedLock(b.Annotation, value)
	if err != nil {
		return []Block{{Reason: BlockKuredLock, Detail: "holding while kured's lock cannot be read: " + err.Error()}}
	}
	holders := kured.Holders(lock, b.Clock())
	if len(holders) == 0 {
		return nil
	}
	return []Block{{Reason: BlockKuredLock, Detail: fmt.Sprintf("kured's lock on DaemonSet %s/%s is held by %s",
		ds.Namespace, ds.Name, listNames(holders, 5))}}
}
