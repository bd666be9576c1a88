package model

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The model API server keeps Nodes and Leases with per-object resourceVersions:
// an Update must carry the version it read (else 409 Conflict), a Create of an
// existing name is AlreadyExists, a missing name is NotFound, and an Update that
// changes nothing keeps the version, as the real API server does. Versions count
// per object rather than cluster-wide: only their equality matters to a writer,
// and per-object counters let two orders of independent writes reach the same
// state. Stored objects are never changed in place (a write stores a new
// object), so a world is cloned by copying maps of pointers and a cache can
// share the server's objects, as an informer's does.

const (
	namespace = "nodepatch"
	lockName  = "nodepatch-lock"
)

func nodeKey(name string) string  { return "node/" + name }
func leaseKey(name string) string { return "lease/" + name }

// newClient is node i's clientset: client-go's fake, with reactors prepended
// that serve Nodes and Leases from the model's store. Everything else (the pods
// a drain lists) falls through to the fake's own empty tracker.
func (m *model) newClient(i int) *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("*", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return m.serveNode(i, a)
	})
	c.PrependReactor("*", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return m.serveLease(i, a)
	})
	return c
}

func (m *model) serveNode(i int, a k8stesting.Action) (bool, runtime.Object, error) {
	w := m.w
	if m.gone(i) {
		return true, nil, errDead
	}
	switch a.GetVerb() {
	case "get":
		name := a.(k8stesting.GetAction).GetName()
		if ctl := m.step; ctl != nil && ctl.agent == i && name == m.name(i) {
			ctl.nodeGets++
			if ctl.plan.atGet == ctl.nodeGets {
				m.interfere(nodeKey(name), ctl.plan.interfere)
			}
		}
		n, ok := w.nodes[name]
		if !ok {
			return true, nil, apierrors.NewNotFound(corev1.Resource("nodes"), name)
		}
		return true, n.DeepCopy(), nil
	case "update":
		next := a.(k8stesting.UpdateAction).GetObject().(*corev1.Node)
		var out *corev1.Node
		var err error
		if failed := m.effect(i, effect{kind: "update", key: nodeKey(next.Name)}, func(writer int) { out, err = m.updateNode(writer, next) }); failed != nil {
			return true, nil, failed
		}
		if err != nil {
			return true, nil, err
		}
		return true, out.DeepCopy(), nil
	case "patch":
		return m.patchNode(i, a.(k8stesting.PatchAction))
	}
	return true, nil, fmt.Errorf("model API server: %s on nodes is not modelled", a.GetVerb())
}

// patchNode applies a merge patch of annotations (the controller's admission)
// to the Node stored when the patch lands: a patch carries no resourceVersion,
// so it never conflicts.
func (m *model) patchNode(i int, a k8stesting.PatchAction) (bool, runtime.Object, error) {
	name := a.GetName()
	if _, ok := m.w.nodes[name]; !ok {
		return true, nil, apierrors.NewNotFound(corev1.Resource("nodes"), name)
	}
	var out *corev1.Node
	var err error
	failed := m.effect(i, effect{kind: "patch", key: nodeKey(name)}, func(writer int) {
		next := m.w.nodes[name].DeepCopy()
		if err = mergeAnnotations(&next.ObjectMeta, a); err == nil {
			next.ResourceVersion = ""
			out, err = m.updateNode(writer, next)
		}
	})
	if failed != nil {
		return true, nil, failed
	}
	if err != nil {
		return true, nil, err
	}
	return true, out.DeepCopy(), nil
}

// mergeAnnotations applies a JSON merge patch that changes annotations only (a
// null value removes one): the only patch nodepatch sends. Any other patch is
// not modelled, and says so.
func mergeAnnotations(meta *metav1.ObjectMeta, a k8stesting.PatchAction) error {
	if a.GetPatchType() != types.MergePatchType {
		return fmt.Errorf("model API server: %s patches are not modelled", a.GetPatchType())
	}
	var patch map[string]map[string]map[string]*string
	if err := json.Unmarshal(a.GetPatch(), &patch); err != nil || len(patch) != 1 || len(patch["metadata"]) != 1 || patch["metadata"]["annotations"] == nil {
		return fmt.Errorf("model API server: patch %s is not modelled: only metadata.annotations is", a.GetPatch())
	}
	for k, v := range patch["metadata"]["annotations"] {
		if v == nil {
			delete(meta.Annotations, k)
			continue
		}
		setAnnotation(meta, k, *v)
	}
	return nil
}

// updateNode stores next for writer (a node's agent, or -1 for the model's
// kubelet and operator) if it carries the current resourceVersion, and checks
// the invariants that judge a single Node write.
func (m *model) updateNode(writer int, next *corev1.Node) (*corev1.Node, error) {
	w := m.w
	cur, ok := w.nodes[next.Name]
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("nodes"), next.Name)
	}
	if next.ResourceVersion != "" && next.ResourceVersion != cur.ResourceVersion {
		return nil, apierrors.NewConflict(corev1.Resource("nodes"), next.Name,
			fmt.Errorf("the object has been modified: version %s, current %s", next.ResourceVersion, cur.ResourceVersion))
	}
	stored := next.DeepCopy()
	stored.ResourceVersion = cur.ResourceVersion
	if equality.Semantic.DeepEqual(stored, cur) {
		return cur, nil
	}
	m.checkNodeWrite(cur, stored)
	stored.ResourceVersion = w.bump(nodeKey(next.Name))
	w.nodes[next.Name] = stored
	m.publishNode(writer, stored)
	return stored, nil
}

func (m *model) serveLease(i int, a k8stesting.Action) (bool, runtime.Object, error) {
	w := m.w
	if m.gone(i) {
		return true, nil, errDead
	}
	if a.GetNamespace() != namespace {
		return true, nil, fmt.Errorf("model API server: leases in namespace %q are not modelled", a.GetNamespace())
	}
	switch a.GetVerb() {
	case "get":
		name := a.(k8stesting.GetAction).GetName()
		l, ok := w.leases[name]
		if !ok {
			return true, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), name)
		}
		return true, l.DeepCopy(), nil
	case "list":
		selector := a.(k8stesting.ListAction).GetListRestrictions().Labels
		list := &coordinationv1.LeaseList{}
		for _, name := range sortedKeys(w.leases) {
			if l := w.leases[name]; selector.Matches(labels.Set(l.Labels)) {
				list.Items = append(list.Items, *l.DeepCopy())
			}
		}
		return true, list, nil
	case "create", "update":
		next := a.(interface{ GetObject() runtime.Object }).GetObject().(*coordinationv1.Lease)
		var err error
		create := a.GetVerb() == "create"
		if failed := m.effect(i, effect{kind: a.GetVerb(), key: leaseKey(next.Name)}, func(writer int) { err = m.writeLease(writer, next, create) }); failed != nil {
			return true, nil, failed
		}
		if err != nil {
			return true, nil, err
		}
		return true, m.w.leases[next.Name].DeepCopy(), nil
	case "patch":
		return m.patchLease(i, a.(k8stesting.PatchAction))
	}
	return true, nil, fmt.Errorf("model API server: %s on leases is not modelled", a.GetVerb())
}

// patchLease is patchNode for a Lease (the controller's pause).
func (m *model) patchLease(i int, a k8stesting.PatchAction) (bool, runtime.Object, error) {
	name := a.GetName()
	if _, ok := m.w.leases[name]; !ok {
		return true, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), name)
	}
	var err error
	failed := m.effect(i, effect{kind: "patch", key: leaseKey(name)}, func(writer int) {
		next := m.w.leases[name].DeepCopy()
		if err = mergeAnnotations(&next.ObjectMeta, a); err == nil {
			next.ResourceVersion = ""
			err = m.writeLease(writer, next, false)
		}
	})
	if failed != nil {
		return true, nil, failed
	}
	if err != nil {
		return true, nil, err
	}
	return true, m.w.leases[name].DeepCopy(), nil
}

func (m *model) writeLease(writer int, next *coordinationv1.Lease, create bool) error {
	w := m.w
	gr := coordinationv1.Resource("leases")
	cur, exists := w.leases[next.Name]
	switch {
	case create && exists:
		return apierrors.NewAlreadyExists(gr, next.Name)
	case !create && !exists:
		return apierrors.NewNotFound(gr, next.Name)
	case !create && next.ResourceVersion != "" && next.ResourceVersion != cur.ResourceVersion:
		return apierrors.NewConflict(gr, next.Name,
			fmt.Errorf("the object has been modified: version %s, current %s", next.ResourceVersion, cur.ResourceVersion))
	}
	stored := next.DeepCopy()
	if exists {
		stored.ResourceVersion = cur.ResourceVersion
		if equality.Semantic.DeepEqual(stored, cur) {
			return nil
		}
	}
	if !slices.Contains(m.leaseNames, next.Name) {
		panic("model: a Lease the model does not hash: " + next.Name)
	}
	m.checkLeaseWrite(cur, stored)
	stored.ResourceVersion = w.bump(leaseKey(next.Name))
	w.leases[next.Name] = stored
	m.publishLease(writer, stored)
	return nil
}

// bump hands out the next resourceVersion of an object.
func (w *world) bump(key string) string {
	w.rv[key]++
	return fmt.Sprint(w.rv[key])
}

// leaseLister is node i's Lease informer cache, as the lock reads it.
type leaseLister struct {
	m *model
	i int
}

func (l leaseLister) List(selector labels.Selector) ([]*coordinationv1.Lease, error) {
	if l.m.gone(l.i) {
		return nil, errDead
	}
	c := l.m.w.caches[l.i]
	var out []*coordinationv1.Lease
	for _, name := range sortedKeys(c.leases) {
		if lease := c.leases[name]; selector.Matches(labels.Set(lease.Labels)) {
			out = append(out, lease)
		}
	}
	return out, nil
}

func (l leaseLister) Get(name string) (*coordinationv1.Lease, error) {
	if l.m.gone(l.i) {
		return nil, errDead
	}
	l.m.polled(l.i, leaseKey(name))
	lease, ok := l.m.w.caches[l.i].leases[name]
	if !ok {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("lease"), name)
	}
	return lease, nil
}

// nodeReader is node i's Node informer cache (one Node, by field selector).
type nodeReader struct {
	m *model
	i int
}

func (r nodeReader) Get() (*corev1.Node, error) {
	if r.m.gone(r.i) {
		return nil, errDead
	}
	r.m.polled(r.i, nodeKey(r.m.name(r.i)))
	if n := r.m.w.caches[r.i].node; n != nil {
		return n, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("node"), r.m.name(r.i))
}

// polled notices an agent polling its cache for its own write (the agent
// sleeps 5 ms between looks, up to 5 s). Watch delays are far shorter than that
// wait, so the second look after a pause delivers everything queued; a third
// means the cache will never show what the agent waits for: the real agent
// would wait out its 5 s and go on, which the model does at once by ending the
// step's context (and counts, as a finding worth reading).
func (m *model) polled(i int, key string) {
	ctl := m.step
	if ctl == nil || ctl.agent != i {
		return
	}
	now := time.Now()
	p := ctl.polls[key]
	p.n++
	if p.n > 1 && now.Sub(p.last) < 4*time.Millisecond {
		p.n = 1 // a second read without a pause is not a poll
	}
	p.last = now
	ctl.polls[key] = p
	switch {
	case p.n == 2:
		c := m.w.caches[i]
		c.deliver(len(c.nodeQ), len(c.leaseQ))
	case p.n == 3:
		ctl.waitRanOut = key
		ctl.cancel()
	}
}

type poll struct {
	n    int
	last time.Time
}
