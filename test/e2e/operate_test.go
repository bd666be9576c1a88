package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

// The chart's ServiceAccount and the claim the admission policy reads.
const (
	chartServiceAccount = "nodepatch"
	nodeNameClaim       = "authentication.kubernetes.io/node-name"
)

// permissionError matches what the API server answers a request that RBAC or
// admission refuses (403) or that carries a token it does not accept (401).
var permissionError = regexp.MustCompile(`(?i)forbidden|unauthorized`)

// TestCycleWithChartServiceAccount installs the chart's RBAC and admission
// policy on a real API server and runs a whole rollout with every agent
// authenticated as the chart's ServiceAccount through a token bound to its own
// agent Pod, as the kubelet would mount it. A permission the chart misses shows
// as a refused request in an agent's log, and fails the test with that line.
func TestCycleWithChartServiceAccount(t *testing.T) {
	c, agents := newChartCluster(t, 3)
	cp := c.cp
	checkAdmissionPolicy(t, c, cp, agents)

	names := []string{nodeName(0), nodeName(1), nodeName(2)}
	require.NoError(t, c.sup.StartAgents())
	c.needReboot(names...)
	for _, n := range names {
		c.waitFor(fmt.Sprintf("%s to finish its reboot as the chart's ServiceAccount", n), 2*time.Minute, func() bool {
			requireNoPermissionErrors(t, c)
			return c.sup.Reboots(n) >= 1 && c.cycleDone(n)
		})
	}
	requireNoPermissionErrors(t, c)
	for _, n := range names {
		require.Equal(t, 1, c.sup.Reboots(n), "%s rebooted more than once", n)
		require.Zero(t, c.podsOn(n), "the drain of %s left workload pods behind", n)
		_, err := c.client.CoreV1().Pods(namespace).Get(c.ctx, agentPodName(n), metav1.GetOptions{})
		require.NoError(t, err, "the drain of %s evicted its own agent pod (a DaemonSet pod)", n)
	}
	require.Equal(t, 1, c.watcher.MaxHolders(), "concurrency 1: want exactly one lock holder at a time")
	require.LessOrEqual(t, c.watcher.MaxCordoned(), 1)
}

// agentIdentity is one node's agent: the token bound to its Pod, and a client
// that uses it.
type agentIdentity struct {
	token  string
	client kubernetes.Interface
}

// newChartCluster is newCluster with the chart installed and every agent given
// its own ServiceAccount token through a per-node --kubeconfig. The agents are
// not started. The supervisor's default kubeconfig holds a token the API server
// does not know, so an agent that did not get its own would be refused (401)
// and the log check would catch it.
func newChartCluster(t *testing.T, nodes int) (*cluster, map[string]*agentIdentity) {
	t.Helper()
	kubeconfigs := t.TempDir()
	nodeFlags := map[string][]string{}
	for i := range nodes {
		nodeFlags[nodeName(i)] = []string{"--kubeconfig=" + filepath.Join(kubeconfigs, nodeName(i))}
	}
	c := newCluster(t, setup{nodes: nodes, noAgents: true, nodeFlags: nodeFlags,
		defaultToken: "not-a-token-the-api-server-knows"})
	ds := installChart(t, c.ctx, c.cp)
	agents := map[string]*agentIdentity{}
	for i := range nodes {
		name := nodeName(i)
		agents[name] = newAgentIdentity(t, c.ctx, c.cp, ds, name)
		// The path was fixed before the node existed; the token needs the Node
		// (its UID goes into the token) and the Pod.
		path, err := c.cp.KubeconfigForToken(agents[name].token)
		require.NoError(t, err)
		require.NoError(t, os.Rename(path, filepath.Join(kubeconfigs, name)))
		c.addWorkload(name, "app-"+name, 2, 2)
	}
	return c, agents
}

// installChart renders the chart with the admission policy enforcing, applies
// every object to the API server (server-side apply, as `helm install` would
// create them) and returns the agent DaemonSet. Nothing runs the DaemonSet
// controller: the test makes the agent Pods itself.
func installChart(t *testing.T, ctx context.Context, cp *harness.ControlPlane) *appsv1.DaemonSet {
	t.Helper()
	require.Equal(t, namespace, charttest.Namespace, "the chart renders for the agents' namespace")
	manifest := charttest.Template(t,
		"--set", "admissionPolicy.enabled=true", "--set", "admissionPolicy.validationActions={Deny}",
		"--set", "serviceAccount.create=true", "--set", "rbac.create=true")
	objs := charttest.Objects(t, manifest)
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
		"DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		require.NotEmpty(t, charttest.FindAll(objs, kind), "the chart rendered no %s", kind)
	}
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	require.NoError(t, err)
	groups, err := restmapper.GetAPIGroupResources(cp.Client.Discovery())
	require.NoError(t, err)
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	var ds *appsv1.DaemonSet
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: o}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "no API for %s", gvk)
		var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			res = dyn.Resource(mapping.Resource).Namespace(namespace)
		}
		applied, err := res.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "helm", Force: true})
		require.NoError(t, err, "apply %s %s", gvk.Kind, u.GetName())
		if gvk.Kind == "DaemonSet" {
			ds = &appsv1.DaemonSet{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(applied.Object, ds))
		}
	}
	require.Equal(t, chartServiceAccount, ds.Spec.Template.Spec.ServiceAccountName)
	return ds
}

func agentPodName(node string) string { return "nodepatch-agent-" + node }

// newAgentIdentity makes the Pod the DaemonSet controller would make on node
// (the chart's pod template, owned by the DaemonSet so that drain leaves it),
// and the token the kubelet would mount into it: bound to the Pod, which makes
// the API server add the Pod's node name to the token's claims.
func newAgentIdentity(t *testing.T, ctx context.Context, cp *harness.ControlPlane, ds *appsv1.DaemonSet, node string) *agentIdentity {
	t.Helper()
	spec := *ds.Spec.Template.Spec.DeepCopy()
	spec.NodeName = node
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: agentPodName(node), Namespace: namespace, Labels: ds.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		},
		Spec: spec,
	}
	pod, err := cp.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	token := createToken(t, ctx, cp.Client, &authenticationv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	})
	client, err := kubernetes.NewForConfig(cp.RESTConfigForToken(token))
	require.NoError(t, err)
	requireIdentity(t, ctx, client, node)
	return &agentIdentity{token: token, client: client}
}

// createToken asks the TokenRequest API for a token of the chart's
// ServiceAccount, bound to ref (nil: bound to nothing).
func createToken(t *testing.T, ctx context.Context, client kubernetes.Interface, ref *authenticationv1.BoundObjectReference) string {
	t.Helper()
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, chartServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: ref, ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "TokenRequest for ServiceAccount %s/%s", namespace, chartServiceAccount)
	require.NotEmpty(t, tr.Status.Token)
	return tr.Status.Token
}

// requireIdentity checks, with a SelfSubjectReview, that client is the chart's
// ServiceAccount and carries node's name in the claim the policy reads.
func requireIdentity(t *testing.T, ctx context.Context, client kubernetes.Interface, node string) {
	t.Helper()
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	require.NoError(t, err)
	user := review.Status.UserInfo
	require.Equal(t, fmt.Sprintf("system:serviceaccount:%s:%s", namespace, chartServiceAccount), user.Username)
	require.Equal(t, authenticationv1.ExtraValue{node}, user.Extra[nodeNameClaim],
		"the Pod-bound token lacks the node-name claim (feature ServiceAccountTokenPodNodeInfo); extra: %v", user.Extra)
}

// checkAdmissionPolicy shows the chart's ValidatingAdmissionPolicy confining a
// node's token to its own Node, on the real API server. Requests are dry runs:
// admission runs in full, nothing is stored.
func checkAdmissionPolicy(t *testing.T, c *cluster, cp *harness.ControlPlane, agents map[string]*agentIdentity) {
	t.Helper()
	own, other := agents[nodeName(0)].client, nodeName(1)
	ours := `{"metadata":{"annotations":{"nodepatch.io/block-reboot":"admission check"}}}`
	var err error
	// The API server loads a new policy asynchronously: wait for it to deny.
	c.waitFor("the admission policy to refuse node-0's token a change of node-1", 30*time.Second, func() bool {
		err = patchNodeDryRun(c.ctx, own, other, ours)
		return err != nil && strings.Contains(err.Error(), "may change only its own Node")
	})
	requirePolicyRefusal(t, err, "nodepatch agent on node node-0 may change only its own Node, not node-1")

	require.NoError(t, patchNodeDryRun(c.ctx, own, nodeName(0), ours),
		"node-0's token may change nodepatch.io/ annotations of node-0")
	requirePolicyRefusal(t, patchNodeDryRun(c.ctx, own, nodeName(0), `{"metadata":{"annotations":{"example.com/owner":"someone"}}}`),
		"may change only nodepatch.io/ annotations")
	require.NoError(t, patchNodeDryRun(c.ctx, own, nodeName(0), `{"spec":{"unschedulable":true}}`),
		"node-0's token may cordon node-0")
	requirePolicyRefusal(t, patchNodeDryRun(c.ctx, own, nodeName(0), `{"metadata":{"annotations":{"nodepatch.io/admitted":"2026-12-01T00:00:00Z"}}}`),
		"only the rollout controller admits")

	unbound, err := kubernetes.NewForConfig(cp.RESTConfigForToken(createToken(t, c.ctx, c.client, nil)))
	require.NoError(t, err)
	requirePolicyRefusal(t, patchNodeDryRun(c.ctx, unbound, nodeName(0), ours), "must authenticate with a token bound to its pod")

	require.NoError(t, evictDryRun(c.ctx, own, "app-node-0-0"), "node-0's token may evict a pod on node-0")
	requirePolicyRefusal(t, evictDryRun(c.ctx, unbound, "app-node-0-0"), "must authenticate with a token bound to its pod")
	// Admission sees the Eviction, not the Pod, so the policy cannot tie an
	// eviction to the evicted pod's node (docs/operations.md says so). This pins
	// that documented limit: if it ever changes, this line and the docs change.
	require.NoError(t, evictDryRun(c.ctx, own, "app-"+other+"-0"),
		"docs/operations.md says a node's token can evict pods elsewhere (within budgets)")
}

func patchNodeDryRun(ctx context.Context, client kubernetes.Interface, node, patch string) error {
	_, err := client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func evictDryRun(ctx context.Context, client kubernetes.Interface, pod string) error {
	return client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pod, Namespace: "default"},
		DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}},
	})
}

// requirePolicyRefusal: err is a 403 from the chart's admission policy (not
// from RBAC) whose message contains want.
func requirePolicyRefusal(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err, "want a refusal saying %q", want)
	require.True(t, apierrors.IsForbidden(err), "want 403 Forbidden, got %v", err)
	require.Contains(t, err.Error(), "ValidatingAdmissionPolicy 'nodepatch-own-node'")
	require.Contains(t, err.Error(), want)
}

// requireNoPermissionErrors fails the test with the first agent log line that
// shows a refused request.
func requireNoPermissionErrors(t *testing.T, c *cluster) {
	t.Helper()
	for _, n := range c.sup.Nodes() {
		out, err := c.sup.AgentLog(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not started yet
		}
		require.NoError(t, err)
		for _, line := range strings.Split(out, "\n") {
			if permissionError.MatchString(line) {
				t.Fatalf("the agent of %s was refused a request (401/403; a permission missing from the chart, or a wrong token):\n%s", n, line)
			}
		}
	}
}
