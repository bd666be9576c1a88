package chart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

const (
	waitTimeout  = 30 * time.Second
	nodeNameKey  = "authentication.kubernetes.io/node-name"
	agentSA      = "nodepatch"
	fieldManager = "nodepatch-chart-test"
)

// nodeLabelValues are the chart values the real-API-server test installs with:
// the defaults plus node labels, whose keys the admission policy then allows.
var nodeLabelValues = []string{
	"--set", "agent.nodeLabels.preReboot={example.com/maintenance=true}",
	"--set", "agent.nodeLabels.postReboot={example.com/patched=yes}",
}

// TestChartOnARealAPIServer applies the chart's objects (defaults, plus
// nodeLabelValues) with server-side apply to a real kube-apiserver (which
// validates every one of them, the DaemonSet's pod template and the admission
// policy's CEL included), then exercises the RBAC rules and the admission policy
// with the agent's own pod-bound ServiceAccount token; last, it applies the
// chart again with a forced drain and no load balancer label, and shows what
// changes.
func TestChartOnARealAPIServer(t *testing.T) {
	// kube-controller-manager runs the controller that type-checks admission
	// policies and reports the result in their status.
	cp := harness.StartControlPlaneT(t, harness.Options{Controllers: true})
	warnings := &warningRecorder{}
	cfg := cp.RESTConfig()
	cfg.WarningHandler = warnings

	applyManifest(t, cfg, mustRead(t, ct.RepoRoot(t)+"/manifests/namespace.yaml"))
	applyManifest(t, cfg, ct.Template(t, nodeLabelValues...))
	require.Empty(t, warnings.all(), "the API server warned about the chart's objects")
	requirePolicyTypeChecks(t, cp.Client, "nodepatch-own-node")

	admin := cp.Client
	for _, n := range []string{"node-a", "node-b"} {
		createNode(t, admin, n)
	}
	agentPod := createPod(t, admin, "nodepatch-agent-a", "node-a", agentSA)
	createPod(t, admin, "web-a", "node-a", "default")
	createPod(t, admin, "web-b", "node-b", "default")
	createPod(t, admin, "web-a2", "node-a", "default")

	agent := clientForToken(t, cp, podBoundToken(t, admin, agentPod))

	t.Run("the token carries its pod's node", func(t *testing.T) {
		review, err := agent.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Equal(t, "system:serviceaccount:nodepatch:nodepatch", review.Status.UserInfo.Username)
		require.Equal(t, authnv1.ExtraValue{"node-a"}, review.Status.UserInfo.Extra[nodeNameKey])
	})

	// The policy is loaded asynchronously: wait until it refuses the agent a
	// change of another node, the test's first claim.
	waitForbidden(t, "changing node-b", func() error {
		return patchNode(t.Context(), agent, "node-b", `{"metadata":{"annotations":{"nodepatch.io/phase":"Draining"}}}`)
	}, "the nodepatch agent on node node-a may change only its own Node, not node-b")

	t.Run("agent changes its own node as a reboot cycle does", func(t *testing.T) {
		ctx := t.Context()
		require.NoError(t, patchNode(ctx, agent, "node-a", `{"metadata":{"annotations":{"nodepatch.io/phase":"Draining","nodepatch.io/cordoned-by-nodepatch":"true"}}}`))
		require.NoError(t, patchNode(ctx, agent, "node-a", `{"spec":{"unschedulable":true}}`))
		// Taints are a list without a merge key: read, add, write back whole.
		updateNode(t, agent, "node-a", func(n *corev1.Node) {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "nodepatch.io/rebooting", Effect: corev1.TaintEffectNoSchedule})
			n.Annotations["nodepatch.io/phase"] = "Rebooting"
		})
		updateNode(t, agent, "node-a", func(n *corev1.Node) {
			var kept []corev1.Taint
			for _, taint := range n.Spec.Taints {
				if taint.Key != "nodepatch.io/rebooting" {
					kept = append(kept, taint)
				}
			}
			n.Spec.Taints, n.Spec.Unschedulable = kept, false
			delete(n.Annotations, "nodepatch.io/phase")
		})
	})

	t.Run("agent may not change other nodes", func(t *testing.T) {
		err := patchNode(t.Context(), agent, "node-b", `{"spec":{"unschedulable":true}}`)
		requireForbidden(t, err, "may change only its own Node, not node-b")
	})

	t.Run("agent may change only nodepatch.io/ metadata and taints on its node", func(t *testing.T) {
		ctx := t.Context()
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"node-role.kubernetes.io/secure":""}}}`),
			"may change only nodepatch.io/ labels")
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"annotations":{"example.com/owner":"me"}}}`),
			"may change only nodepatch.io/ annotations")
		// An approval gate is passed by the approver, never by the agent itself.
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"annotations":{"nodepatch.io/approve-ticket":"2026-01-01T00:00:00Z"}}}`),
			"may remove its Node's nodepatch.io/approve- annotations but not set them")
		// A strategic merge patch replaces the whole taint list, dropping the
		// node's own example.com/gpu taint.
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"spec":{"taints":[{"key":"nodepatch.io/rebooting","effect":"NoSchedule"}]}}`),
			"may add or remove only nodepatch.io/ taints")
	})

	t.Run("agent sets and removes the labels its flags name, and no other", func(t *testing.T) {
		ctx := t.Context()
		for _, key := range []string{"node.kubernetes.io/exclude-from-external-load-balancers", "example.com/maintenance", "example.com/patched"} {
			require.NoError(t, patchNode(ctx, agent, "node-a", fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, key)), "set %s", key)
			require.NoError(t, patchNode(ctx, agent, "node-a", fmt.Sprintf(`{"metadata":{"labels":{%q:"false"}}}`, key)), "change %s", key)
			require.NoError(t, patchNode(ctx, agent, "node-a", fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, key)), "remove %s", key)
		}
		// A key not configured, even beside a configured one in the same patch.
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"example.com/other":"true"}}}`),
			"may change only nodepatch.io/ labels")
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"example.com/maintenance":"true","example.com/maintenance-window":"now"}}}`),
			"may change only nodepatch.io/ labels")
		// The node's own labels stay out of reach.
		requireForbidden(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"kubernetes.io/hostname":null}}}`),
			"may change only nodepatch.io/ labels")
		// The quarantine label is nodepatch's own.
		require.NoError(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"nodepatch.io/quarantined":"true"}}}`))
		require.NoError(t, patchNode(ctx, agent, "node-a", `{"metadata":{"labels":{"nodepatch.io/quarantined":null}}}`))
		n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "node-a", n.Labels["kubernetes.io/hostname"])
		for _, key := range []string{"node.kubernetes.io/exclude-from-external-load-balancers", "example.com/maintenance",
			"example.com/patched", "example.com/other", "example.com/maintenance-window", "nodepatch.io/quarantined"} {
			require.NotContains(t, n.Labels, key)
		}
	})

	t.Run("agent removes an approval it may not give", func(t *testing.T) {
		ctx := t.Context()
		const approval = `{"metadata":{"annotations":{"nodepatch.io/approve-ticket":%s}}}`
		require.NoError(t, patchNode(ctx, admin, "node-a", fmt.Sprintf(approval, `"2026-01-01T00:00:00Z"`)))
		requireForbidden(t, patchNode(ctx, agent, "node-a", fmt.Sprintf(approval, `"2026-02-02T00:00:00Z"`)),
			"may remove its Node's nodepatch.io/approve- annotations but not set them")
		require.NoError(t, patchNode(ctx, agent, "node-a", fmt.Sprintf(approval, "null")))
	})

	t.Run("agent evicts pods on its node", func(t *testing.T) {
		require.NoError(t, evict(t.Context(), agent, "web-a"))
	})

	t.Run("eviction on another node is beyond admission's reach", func(t *testing.T) {
		// Admission sees the Eviction, never the Pod, so the policy cannot tie an
		// eviction to a node (documented in the chart's README). This asserts the
		// documented limit, so that a change in Kubernetes shows up here.
		require.NoError(t, evict(t.Context(), agent, "web-b"))
	})

	t.Run("a token not bound to a pod is refused", func(t *testing.T) {
		unbound := clientForToken(t, cp, unboundToken(t, admin))
		requireForbidden(t, patchNode(t.Context(), unbound, "node-a", `{"metadata":{"annotations":{"nodepatch.io/phase":"Draining"}}}`),
			"must authenticate with a token bound to its pod")
		requireForbidden(t, evict(t.Context(), unbound, "web-a2"), "must authenticate with a token bound to its pod")
	})

	t.Run("nobody else's rights change", func(t *testing.T) {
		other := otherServiceAccountWithAgentRole(t, admin)
		otherPod := createPod(t, admin, "other-a", "node-a", other)
		client := clientForToken(t, cp, podBoundTokenFor(t, admin, other, otherPod))
		require.Eventually(t, func() bool {
			return patchNode(t.Context(), client, "node-b", `{"metadata":{"labels":{"example.com/x":"y"}}}`) == nil
		}, waitTimeout, 100*time.Millisecond, "a ServiceAccount with the same ClusterRole changes any node")
	})

	t.Run("RBAC grants no more than the agent needs", func(t *testing.T) {
		testAgentRBAC(t, agent)
	})

	t.Run("a forced drain deletes pods on its node only; no load balancer label", func(t *testing.T) {
		testForcedDrain(t, cp, agent)
	})
}

// testForcedDrain applies the chart again with agent.drain.timeoutAction=force
// (delete on pods, and the policy that confines it) and without the load
// balancer label, and checks both with the agent's token. Calls that would
// change something while the new rules load are dry runs: admission runs on
// them, and a call let through too early changes nothing.
func testForcedDrain(t *testing.T, cp *harness.ControlPlane, agent kubernetes.Interface) {
	ctx := t.Context()
	admin := cp.Client
	warnings := &warningRecorder{}
	cfg := cp.RESTConfig()
	cfg.WarningHandler = warnings
	applyManifest(t, cfg, ct.Template(t, append([]string{
		"--set", "agent.drain.timeoutAction=force",
		"--set", "agent.nodeLabels.excludeFromLoadBalancers=false",
	}, nodeLabelValues...)...))
	require.Empty(t, warnings.all(), "the API server warned about the chart's objects")
	requirePolicyTypeChecks(t, admin, "nodepatch-own-node")
	requirePolicyTypeChecks(t, admin, "nodepatch-own-node-pods")

	createPod(t, admin, "stuck-a", "node-a", "default")
	createPod(t, admin, "stuck-b", "node-b", "default")
	dryRunDelete := func(client kubernetes.Interface, pod string) func() error {
		return func() error {
			return client.CoreV1().Pods("default").Delete(ctx, pod, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}
	}
	// Authorization comes before admission: once the policy's refusal shows,
	// RBAC grants the delete.
	waitForbidden(t, "deleting a pod on node-b", dryRunDelete(agent, "stuck-b"),
		"the nodepatch agent on node node-a may delete only pods on its own Node, not default/stuck-b")
	require.NoError(t, agent.CoreV1().Pods("default").Delete(ctx, "stuck-a", metav1.DeleteOptions{}))
	_, err := admin.CoreV1().Pods("default").Get(ctx, "stuck-b", metav1.GetOptions{})
	require.NoError(t, err, "the pod on node-b is gone")

	unbound := clientForToken(t, cp, unboundToken(t, admin))
	requireForbidden(t, dryRunDelete(unbound, "stuck-b")(), "must authenticate with a token bound to its pod")

	dryRunPatch := func(patch string) func() error {
		return func() error {
			_, err := agent.CoreV1().Nodes().Patch(ctx, "node-a", types.StrategicMergePatchType, []byte(patch),
				metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
	}
	waitForbidden(t, "setting the load balancer label", dryRunPatch(`{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":"true"}}}`),
		"may change only nodepatch.io/ labels")
	require.NoError(t, dryRunPatch(`{"metadata":{"labels":{"example.com/maintenance":"true"}}}`)())
}

func testAgentRBAC(t *testing.T, agent kubernetes.Interface) {
	ctx := t.Context()
	_, err := agent.CoreV1().Nodes().List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=node-a"})
	require.NoError(t, err)
	_, err = agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	require.NoError(t, err)
	_, err = agent.CoordinationV1().Leases("nodepatch").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	// A drain that timed out names the budgets that hold the pods left.
	_, err = agent.PolicyV1().PodDisruptionBudgets("default").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	_, err = agent.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "node-a."},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "node-a"},
		Reason:         "Test", Message: "test", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	forbidden := map[string]func() error{
		"delete a node": func() error { return agent.CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}) },
		// Only with agent.drain.timeoutAction=force (testForcedDrain).
		"delete a pod": func() error { return agent.CoreV1().Pods("default").Delete(ctx, "web-a2", metav1.DeleteOptions{}) },
		"change a budget": func() error {
			_, err := agent.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"read secrets": func() error {
			_, err := agent.CoreV1().Secrets("nodepatch").List(ctx, metav1.ListOptions{})
			return err
		},
		"leases elsewhere": func() error {
			_, err := agent.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
			return err
		},
		"list daemonsets": func() error {
			_, err := agent.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
			return err
		},
	}
	for what, call := range forbidden {
		err := call()
		require.True(t, apierrors.IsForbidden(err), "%s: want Forbidden, got %v", what, err)
	}
}

// warningRecorder keeps the API server's warnings (Warning headers).
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// applyManifest server-side applies every object of a YAML stream.
func applyManifest(t *testing.T, cfg *rest.Config, manifest string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	disco, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco.Discovery()))
	for _, o := range ct.Objects(t, manifest) {
		u := &unstructured.Unstructured{Object: o}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s", gvk)
		body, err := json.Marshal(u.Object)
		require.NoError(t, err)
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if ns := u.GetNamespace(); ns != "" {
			ri = dyn.Resource(mapping.Resource).Namespace(ns)
		}
		_, err = ri.Patch(t.Context(), u.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: fieldManager, Force: ptrTo(true)})
		require.NoError(t, err, "apply %s %s", gvk.Kind, u.GetName())
	}
}

// requirePolicyTypeChecks waits for the API server to type-check the policy's
// CEL against the matched resources and fails on any warning it reports.
func requirePolicyTypeChecks(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	var policy *admissionv1.ValidatingAdmissionPolicy
	require.Eventually(t, func() bool {
		var err error
		policy, err = client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(t.Context(), name, metav1.GetOptions{})
		require.NoError(t, err)
		return policy.Status.ObservedGeneration == policy.Generation && policy.Status.TypeChecking != nil
	}, waitTimeout, 100*time.Millisecond, "policy %s was not type-checked", name)
	t.Logf("policy %s status: %+v", name, policy.Status)
	require.Empty(t, policy.Status.TypeChecking.ExpressionWarnings, "CEL type-check warnings")
	for _, c := range policy.Status.Conditions {
		require.NotEqual(t, metav1.ConditionFalse, c.Status, "policy condition %s: %s", c.Type, c.Message)
	}
}

func createNode(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	_, err := client.CoreV1().Nodes().Create(t.Context(), &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name},
			Annotations: map[string]string{"example.com/rack": "r1"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "example.com/gpu", Effect: corev1.TaintEffectPreferNoSchedule}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// createPod makes a pod bound to node (no scheduler needed) running as the
// ServiceAccount sa, in the agent's namespace for the agent, "default" else.
func createPod(t *testing.T, client kubernetes.Interface, name, node, sa string) *corev1.Pod {
	t.Helper()
	ns := "default"
	if sa != "default" {
		ns = "nodepatch"
	}
	pod, err := client.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: sa,
			Containers: []corev1.Container{{Name: "c", Image: "registry.example/c:1"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return pod
}

// podBoundToken asks for a token of the agent's ServiceAccount bound to pod, as
// the kubelet does for a projected service account token.
func podBoundToken(t *testing.T, client kubernetes.Interface, pod *corev1.Pod) string {
	return podBoundTokenFor(t, client, agentSA, pod)
}

func podBoundTokenFor(t *testing.T, client kubernetes.Interface, sa string, pod *corev1.Pod) string {
	t.Helper()
	tr, err := client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(t.Context(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			ExpirationSeconds: ptrTo(int64(3600)),
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return tr.Status.Token
}

func unboundToken(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	tr, err := client.CoreV1().ServiceAccounts("nodepatch").CreateToken(t.Context(), agentSA, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return tr.Status.Token
}

func clientForToken(t *testing.T, cp *harness.ControlPlane, token string) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(cp.RESTConfigForToken(token))
	require.NoError(t, err)
	return client
}

// otherServiceAccountWithAgentRole makes a second ServiceAccount bound to the
// agent's ClusterRole, which the policy does not match.
func otherServiceAccountWithAgentRole(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	const name = "other"
	ctx := t.Context()
	_, err := client.CoreV1().ServiceAccounts("nodepatch").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "other-nodepatch"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodepatch"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "nodepatch"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return name
}

// updateNode reads a node, changes it and writes it back, retrying on conflicts
// (kube-controller-manager writes nodes too).
func updateNode(t *testing.T, client kubernetes.Interface, name string, change func(*corev1.Node)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(n)
		_, err = client.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err, "update node %s", name)
}

func patchNode(ctx context.Context, client kubernetes.Interface, name, patch string) error {
	_, err := client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

func evict(ctx context.Context, client kubernetes.Interface, pod string) error {
	return client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: "default"}})
}

func requireForbidden(t *testing.T, err error, message string) {
	t.Helper()
	require.Error(t, err)
	require.True(t, apierrors.IsForbidden(err), "want Forbidden, got %v", err)
	require.Contains(t, err.Error(), message)
}

// waitForbidden retries call until the API server refuses it with message.
func waitForbidden(t *testing.T, what string, call func() error, message string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var err error
	for time.Now().Before(deadline) {
		err = call()
		if err != nil && strings.Contains(err.Error(), message) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.FailNow(t, fmt.Sprintf("%s: the admission policy did not refuse within %s; last result: %v", what, waitTimeout, err))
}

func ptrTo[T any](v T) *T { return &v }

// TestHelmInstallUpgradeUninstall runs helm itself against a real API server:
// install (the chart's kubeVersion is checked against the server), the NOTES it
// prints, an upgrade that changes a flag, and an uninstall that leaves the
// agents' Leases behind, as docs/operations.md says.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{})
	// helm checks the chart's kubeVersion against the server's /version, which
	// is v0.0.0-master unless the build stamps it.
	info, err := cp.Client.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Regexp(t, `^v1\.[0-9]+\.[0-9]+`, info.GitVersion,
		"kube-apiserver reports version %q: hack/build-tools.sh must build it with "+
			"-ldflags \"-X k8s.io/component-base/version.gitVersion=vX.Y.Z -X k8s.io/component-base/version.gitMajor=X "+
			"-X k8s.io/component-base/version.gitMinor=Y\"", info.GitVersion)
	kubeconfig := []string{"--kubeconfig", cp.AdminKubeconfig, "--namespace", "nodepatch"}
	helm := func(args ...string) string {
		t.Helper()
		out, stderr, err := ct.Run(t, append(args, kubeconfig...)...)
		require.NoError(t, err, "helm %s: %s", strings.Join(args, " "), stderr)
		return out
	}

	out := helm("install", "nodepatch", ct.ChartDir(t), "--create-namespace", "--wait=false")
	for _, want := range []string{
		"nodepatch status --namespace nodepatch",
		"kubectl -n nodepatch get leases -l nodepatch.io/lock=nodepatch-lock",
		"kubectl annotate node NODE nodepatch.io/block-reboot=\"reason\"",
		"kubectl annotate node NODE nodepatch.io/force-reboot=\"true\"",
		"kubectl -n nodepatch annotate lease nodepatch-lock nodepatch.io/pause=\"reason\" --overwrite",
		"kubectl -n nodepatch annotate lease nodepatch-lock nodepatch.io/pause-",
		"no ServiceMonitor or PrometheusRule",
	} {
		require.Contains(t, out, want, "NOTES")
	}
	require.NotContains(t, out, "WARNING: admissionPolicy.enabled is false")

	ctx := t.Context()
	ds, err := cp.Client.AppsV1().DaemonSets("nodepatch").Get(ctx, "nodepatch", metav1.GetOptions{})
	require.NoError(t, err)
	require.Contains(t, ds.Spec.Template.Spec.Containers[0].Args, "--concurrency=1")
	_, err = cp.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "nodepatch-own-node", metav1.GetOptions{})
	require.NoError(t, err)

	// The agents' Leases are theirs, not the release's.
	for _, name := range []string{"nodepatch-lock", "nodepatch-lock-0"} {
		_, err := cp.Client.CoordinationV1().Leases("nodepatch").Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nodepatch.io/lock": "nodepatch-lock"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	helm("upgrade", "nodepatch", ct.ChartDir(t), "--reuse-values", "--set", "agent.concurrency=2")
	ds, err = cp.Client.AppsV1().DaemonSets("nodepatch").Get(ctx, "nodepatch", metav1.GetOptions{})
	require.NoError(t, err)
	require.Contains(t, ds.Spec.Template.Spec.Containers[0].Args, "--concurrency=2")

	helm("uninstall", "nodepatch", "--wait=false")
	_, err = cp.Client.AppsV1().DaemonSets("nodepatch").Get(ctx, "nodepatch", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the DaemonSet outlived the release: %v", err)
	_, err = cp.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "nodepatch-own-node", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the admission policy outlived the release: %v", err)
	leases, err := cp.Client.CoordinationV1().Leases("nodepatch").List(ctx, metav1.ListOptions{LabelSelector: "nodepatch.io/lock=nodepatch-lock"})
	require.NoError(t, err)
	require.Len(t, leases.Items, 2, "uninstall leaves the Leases (docs/operations.md#uninstall removes them)")
}
