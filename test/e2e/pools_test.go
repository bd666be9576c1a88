package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/status"
)

const (
	poolLabel     = "nodepool"
	poolConfigMap = "nodepatch-pools"
)

// setPools writes the pools ConfigMap's data, creating it the first time.
func (c *cluster) setPools(data map[string]string) {
	c.t.Helper()
	cms := c.client.CoreV1().ConfigMaps(namespace)
	cm, err := cms.Get(c.ctx, poolConfigMap, metav1.GetOptions{})
	if err != nil {
		_, err = cms.Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: poolConfigMap, Namespace: namespace}, Data: data},
			metav1.CreateOptions{})
		require.NoError(c.t, err)
		return
	}
	cm.Data = data
	_, err = cms.Update(c.ctx, cm, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

// header is the lock's header Lease's annotations (empty before it exists).
func (c *cluster) header() map[string]string {
	h, err := c.client.CoordinationV1().Leases(namespace).Get(c.ctx, "nodepatch-lock", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return h.Annotations
}

// namespacedEvents are the messages of the Events with reason on object name
// in the controller's namespace.
func (c *cluster) namespacedEvents(name, reason string) []string {
	list, err := c.client.CoreV1().Events(namespace).List(c.ctx, metav1.ListOptions{})
	require.NoError(c.t, err)
	var msgs []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}

func (c *cluster) rebootsOf(names []string) int {
	total := 0
	for _, n := range names {
		total += c.sup.Reboots(n)
	}
	return total
}

// TestPoolsChangeAtRunTime: two pools with limits of their own hold during a
// rollout; raising one pool's limit in the ConfigMap takes effect mid-rollout
// with the same controller process; a bad edit keeps the last good pools, with
// a Warning Event naming the key and its value, and `nodepatch status` says so.
func TestPoolsChangeAtRunTime(t *testing.T) {
	labels := map[string]map[string]string{}
	var a, b, all []string
	for i := range 7 {
		pool := "a"
		if i >= 3 {
			pool = "b"
		}
		labels[nodeName(i)] = map[string]string{poolLabel: pool}
		all = append(all, nodeName(i))
		if pool == "a" {
			a = append(a, nodeName(i))
		} else {
			b = append(b, nodeName(i))
		}
	}
	c := newCluster(t, setup{nodes: 7, concurrency: 7, rebootTime: 2 * time.Second, labels: labels,
		flags: []string{"--admission=controller"}})
	seen := watchOutageBy(t, c, poolLabel)
	c.setPools(map[string]string{
		"a": "selector: nodepool=a\nmaxUnavailable: 1\n",
		"b": "selector: nodepool=b\nmaxUnavailable: 1\n",
	})
	ctl := c.startController("ctl-0", "--max-unavailable=10", "--pools-configmap="+poolConfigMap)
	c.waitFor("the pools published on the lock's header", time.Minute, func() bool {
		return strings.Contains(c.header()[lock.AnnotationRolloutPolicy], `"name":"b"`)
	})

	c.needReboot(all...)
	c.waitFor("a node of pool b to finish its reboot", 2*time.Minute, func() bool { return c.rebootsOf(b) >= 1 })
	peaks, _, _ := seen.peaks()
	require.Equal(t, 1, peaks["b"], "nodes of pool b out at once under its limit of 1")
	require.LessOrEqual(t, peaks["a"], 1, "nodes of pool a out at once under its limit of 1")
	require.Less(t, c.rebootsOf(b), len(b), "pool b finished before its limit could be raised")

	c.setPools(map[string]string{
		"a": "selector: nodepool=a\nmaxUnavailable: 1\n",
		"b": "selector: nodepool=b\nmaxUnavailable: 3\n",
	})
	c.waitFor("pool b's raised limit to let two of its nodes out at once", 2*time.Minute, func() bool {
		peaks, _, _ := seen.peaks()
		return peaks["b"] >= 2
	})

	bad := "selector: nodepool=b\nmaxUnavailable: 0\n"
	c.setPools(map[string]string{"a": "selector: nodepool=a\nmaxUnavailable: 1\n", "b": bad})
	var warning string
	c.waitFor("a PoolsInvalid Event on the ConfigMap", time.Minute, func() bool {
		msgs := c.namespacedEvents(poolConfigMap, "PoolsInvalid")
		if len(msgs) > 0 {
			warning = msgs[0]
		}
		return warning != ""
	})
	require.Contains(t, warning, fmt.Sprintf("key %q value %q", "b", bad), "the Event names the bad key and its value")
	require.Contains(t, warning, "keeps the last good pools")
	c.waitFor("the pools' fault on the lock's header", time.Minute, func() bool {
		return c.header()[lock.AnnotationRolloutPolicyError] != ""
	})
	require.Contains(t, c.header()[lock.AnnotationRolloutPolicy], `{"name":"b","selector":"nodepool=b","maxUnavailable":3}`,
		"the last good pools stay in force")
	st, err := status.Read(c.ctx, c.client, namespace, "nodepatch-lock")
	require.NoError(t, err)
	require.Contains(t, st.Lock.PolicyError, `key "b"`, "nodepatch status tells of the bad ConfigMap")
	for _, n := range st.Nodes {
		require.Equal(t, labels[n.Name][poolLabel], n.Pool, "the pool status shows for %s", n.Name)
	}

	c.waitRebooted(1, all...)
	peaks, _, _ = seen.peaks()
	require.LessOrEqual(t, peaks["a"], 1, "nodes of pool a out at once over the whole rollout")
	require.LessOrEqual(t, peaks["b"], 3, "nodes of pool b out at once over the whole rollout")
	for _, n := range all {
		require.Equal(t, 1, c.sup.Reboots(n), "%s rebooted more than once", n)
	}
	exited, _ := ctl.Exited()
	require.False(t, exited, "the controller took every change without a restart")
	require.Equal(t, len(a), c.rebootsOf(a))
}
