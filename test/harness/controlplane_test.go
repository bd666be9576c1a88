package harness_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/nodepatch/nodepatch/test/harness"
)

const waitTimeout = 60 * time.Second

// TestFullControlPlane starts every component once and checks what the
// end-to-end tests rely on.
func TestFullControlPlane(t *testing.T) {
	aliceToken, err := harness.RandomToken()
	require.NoError(t, err)
	cp := harness.StartControlPlaneT(t, harness.Options{
		Controllers: true,
		Kwok:        true,
		ExtraTokens: []harness.Token{{Token: aliceToken, User: "alice", Groups: []string{"team-a"}}},
	})

	t.Run("admin kubeconfig works", func(t *testing.T) {
		client := clientFromKubeconfig(t, cp.AdminKubeconfig)
		_, err := client.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{})
		require.NoError(t, err)
	})
	t.Run("RBAC is enforced for extra tokens", func(t *testing.T) {
		testRBAC(t, cp, aliceToken)
	})
	t.Run("kwok keeps the boot id and follows the down annotation", func(t *testing.T) {
		testKwokNodeLifecycle(t, cp.Client)
	})
	t.Run("evicted pods of a Deployment come back on another node", func(t *testing.T) {
		testEvictionRecreates(t, cp.Client)
	})
}

func clientFromKubeconfig(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return client
}

func testRBAC(t *testing.T, cp *harness.ControlPlane, token string) {
	path, err := cp.KubeconfigForToken(token)
	require.NoError(t, err)
	alice := clientFromKubeconfig(t, path)
	ctx := t.Context()
	_, err = alice.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "alice lists nodes without a role: %v", err)

	bindGroupToNodeReader(t, cp.Client, "team-a")
	require.Eventually(t, func() bool {
		_, err := alice.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil
	}, waitTimeout, 100*time.Millisecond, "alice's group was granted node reading")
}

func bindGroupToNodeReader(t *testing.T, client kubernetes.Interface, group string) {
	t.Helper()
	ctx := t.Context()
	_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "node-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "node-reader-" + group},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "node-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func testKwokNodeLifecycle(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	createKwokNode(t, client, "lifecycle-node", "boot-1", nil)
	node := waitNode(t, client, "lifecycle-node", readyIs(corev1.ConditionTrue))
	require.Equal(t, "boot-1", node.Status.NodeInfo.BootID, "kwok kept the boot id while initialising the node")

	patchNode(t, client, "lifecycle-node", fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, harness.DownAnnotation))
	node = waitNode(t, client, "lifecycle-node", readyIs(corev1.ConditionFalse))
	require.Equal(t, "KubeletDown", readyCondition(node).Reason)

	_, err := client.CoreV1().Nodes().Patch(ctx, "lifecycle-node", types.MergePatchType,
		[]byte(`{"status":{"nodeInfo":{"bootID":"boot-2"}}}`), metav1.PatchOptions{}, "status")
	require.NoError(t, err)
	patchNode(t, client, "lifecycle-node", fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, harness.DownAnnotation))
	node = waitNode(t, client, "lifecycle-node", readyIs(corev1.ConditionTrue))
	require.Equal(t, "boot-2", node.Status.NodeInfo.BootID, "kwok kept the new boot id when the node came back")
}

func createKwokNode(t *testing.T, client kubernetes.Interface, name, bootID string, labels map[string]string) {
	t.Helper()
	_, err := client.CoreV1().Nodes().Create(t.Context(), &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{harness.KwokNodeAnnotation: "fake"},
		},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: bootID}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func patchNode(t *testing.T, client kubernetes.Interface, name, patch string) {
	t.Helper()
	_, err := client.CoreV1().Nodes().Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
}

func readyCondition(node *corev1.Node) corev1.NodeCondition {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func readyIs(status corev1.ConditionStatus) func(*corev1.Node) bool {
	return func(n *corev1.Node) bool { return readyCondition(n).Status == status }
}

// waitNode waits until cond holds for the node and returns the node.
func waitNode(t *testing.T, client kubernetes.Interface, name string, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	var node *corev1.Node
	require.Eventually(t, func() bool {
		n, err := client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		node = n
		return cond(n)
	}, waitTimeout, 100*time.Millisecond, "node %s never met the condition", name)
	return node
}

func testEvictionRecreates(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	for _, name := range []string{"evict-a", "evict-b"} {
		createKwokNode(t, client, name, "boot-"+name, map[string]string{"pool": "evict"})
		waitNode(t, client, name, readyIs(corev1.ConditionTrue))
	}
	// One replica, kept to the two nodes of this test.
	createDeployment(t, client, "web", map[string]string{"pool": "evict"})
	first := waitRunningPod(t, client, "app=web", "")

	// Cordon the pod's node, as a drain does, then evict the pod.
	patchNode(t, client, first.Spec.NodeName, `{"spec":{"unschedulable":true}}`)
	err := client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: first.Name, Namespace: "default"},
	})
	require.NoError(t, err)
	second := waitRunningPod(t, client, "app=web", first.Name)
	require.NotEqual(t, first.Spec.NodeName, second.Spec.NodeName, "the new pod avoided the cordoned node")
	require.Eventually(t, func() bool {
		_, err := client.CoreV1().Pods("default").Get(ctx, first.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, waitTimeout, 100*time.Millisecond, "the evicted pod was really deleted")
}

func createDeployment(t *testing.T, client kubernetes.Interface, name string, nodeSelector map[string]string) {
	t.Helper()
	labels := map[string]string{"app": name}
	_, err := client.AppsV1().Deployments("default").Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Containers:   []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}},
				},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// waitRunningPod waits for a Running pod matching selector, other than
// the one named except, and returns it.
func waitRunningPod(t *testing.T, client kubernetes.Interface, selector, except string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	require.Eventually(t, func() bool {
		pods, err := client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Name != except && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				found = p
				return true
			}
		}
		return false
	}, waitTimeout, 100*time.Millisecond, "no running pod for %s besides %q", selector, except)
	return found
}

// TestStopEndsComponentsAndRemovesDir checks that Stop leaves nothing behind.
func TestStopEndsComponentsAndRemovesDir(t *testing.T) {
	binDir := harness.EnsureToolsT(t)
	cp, err := harness.StartControlPlane(t.Context(), harness.Options{BinDir: binDir, Log: harness.NewTestLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cp.Stop() })
	url, dir := cp.URL, cp.Dir
	require.DirExists(t, dir)

	require.NoError(t, cp.Stop())
	require.NoError(t, cp.Stop(), "a second Stop is harmless")
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "Stop removed %s: %v", dir, err)
	client := &http.Client{Timeout: 2 * time.Second}
	_, err = client.Get(url + "/readyz")
	require.Error(t, err, "nothing answers at %s after Stop", url)
}

func TestStartControlPlaneRejectsBadToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := harness.StartControlPlane(ctx, harness.Options{
		BinDir:      t.TempDir(), // never reached: the token is checked first
		ExtraTokens: []harness.Token{{Token: "abc", User: "bob,admin"}},
	})
	require.ErrorContains(t, err, `"bob,admin"`)
}
