package chaos

import (
	"cmp"
	"context"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/test/sim"
)

// tamperLease is an operator deleting or editing a slot Lease: it frees a
// held slot under its holder, gives it to a holder that is no Node, or just
// touches it (a new resourceVersion that the agents' next writes conflict
// with). Which slot is the first held one, else the first one: the choice
// follows the state the run is in, not the seed.
func (r *run) tamperLease(ctx context.Context, e event) error {
	var lease *coordinationv1.Lease
	err := r.retry(ctx, "list the lock's leases", func() error {
		list, err := r.client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{LabelSelector: sim.LockLabel})
		if err != nil {
			return err
		}
		lease = pickSlot(list.Items)
		return nil
	})
	if err != nil || lease == nil {
		r.logf("%s: no slot lease to tamper with", e.kind)
		return err
	}
	holder := holderOf(lease)
	r.count(e.kind)
	if e.kind == faultLeaseDelete {
		r.watcher.SlotTampered(holder)
		r.logf("operator deletes lease %s (held by %q)", lease.Name, holder)
		if err := r.client.CoordinationV1().Leases(namespace).Delete(ctx, lease.Name, metav1.DeleteOptions{}); err != nil {
			r.logf("operator's lease deletion failed: %v", err) // gone already, or the API server away
		}
		return nil
	}
	return r.editLease(ctx, e.sub, lease, holder)
}

func (r *run) editLease(ctx context.Context, how string, lease *coordinationv1.Lease, holder string) error {
	switch how {
	case "ghost-holder":
		ghost := "ghost-of-" + lease.Name
		lease.Spec.HolderIdentity = &ghost
	case "free":
		empty := ""
		lease.Spec.HolderIdentity = &empty
	default:
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations["chaos.nodepatch.io/touched"] = time.Now().Format(time.RFC3339Nano)
	}
	if how != "annotate" {
		r.watcher.SlotTampered(holder)
	}
	r.logf("operator edits lease %s (held by %q): %s", lease.Name, holder, how)
	_, err := r.client.CoordinationV1().Leases(namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		// The agents got there first: an operator would look again; the
		// schedule moves on.
		r.logf("operator's lease edit failed: %v", err)
	}
	return nil
}

// pickSlot returns the first held slot Lease by name, else the first slot.
func pickSlot(leases []coordinationv1.Lease) *coordinationv1.Lease {
	var slots []*coordinationv1.Lease
	for i := range leases {
		if leases[i].Name != lockName {
			slots = append(slots, &leases[i])
		}
	}
	slices.SortFunc(slots, func(a, b *coordinationv1.Lease) int {
		if ha, hb := holderOf(a) != "", holderOf(b) != ""; ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(slots) == 0 {
		return nil
	}
	return slots[0]
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
