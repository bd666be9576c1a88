package realnode

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// uninitializedTaint is what a kubelet with --cloud-provider=external puts on
// its new Node until a cloud controller has set the addresses.
const uninitializedTaint = "node.cloudprovider.kubernetes.io/uninitialized"

// Cluster is a real control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) for real nodes, and the images they run.
type Cluster struct {
	CP     *harness.ControlPlane
	BinDir string
	Images Images
	tokens map[string]string // node name -> kubelet bearer token
	// loopproxy is the binary that brings the API server into a node.
	loopproxy string
}

// StartClusterT starts the control plane with a kubelet identity for each of
// nodes, and builds the images. The API server prefers InternalIP addresses,
// which are 127.0.0.1 here: it never looks a node's name up in DNS.
func StartClusterT(t testing.TB, nodes ...string) *Cluster {
	t.Helper()
	binDir := harness.EnsureToolsT(t)
	_, err := harness.ToolPath(binDir, "kubelet")
	require.NoError(t, err)
	c := &Cluster{BinDir: binDir, tokens: map[string]string{}}
	var extra []harness.Token
	for _, n := range nodes {
		tok, err := harness.RandomToken()
		require.NoError(t, err)
		c.tokens[n] = tok
		// The identity the Node authorizer gives a kubelet.
		extra = append(extra, harness.Token{Token: tok, User: "system:node:" + n, Groups: []string{"system:nodes"}})
	}
	before := readSysctls(t)
	// Registered first, so it runs last: after every node is off.
	t.Cleanup(func() { require.Equal(t, before, readSysctls(t), "the machine's kernel tunables changed") })
	c.CP = harness.StartControlPlaneT(t, harness.Options{
		BinDir: binDir, Controllers: true, ExtraTokens: extra,
		APIServerArgs: []string{"--kubelet-preferred-address-types=InternalIP"},
	})
	c.Images = BuildImagesT(t, binDir)
	c.loopproxy = filepath.Join(t.TempDir(), "loopproxy")
	buildStatic(t, "./test/realnode/loopproxy", c.loopproxy)
	return c
}

// NodeOptions configure one real node.
type NodeOptions struct {
	// Name is the Node's and the machine's name; it must be one given to
	// StartClusterT.
	Name string
	// Files are written into the node's root before it first boots, beside
	// the harness's own (container path -> content).
	Files map[string]string
	// ROBinds are extra read-only "HOSTDIR:CONTAINERDIR" bind mounts.
	ROBinds []string
	// ReadyTimeout bounds the wait for the Node to be Ready; default 3m.
	ReadyTimeout time.Duration
}

// Node is a real node of the cluster: a systemd-nspawn machine running
// containerd and the kubelet.
type Node struct {
	*hostenv.Node
	Name    string
	cluster *Cluster
}

// StartNodeT boots a node on a fresh overlay of the cached node root and waits
// until its Node is Ready from this boot. It is powered off when the test ends,
// and the test fails if it leaves a cgroup behind.
func (c *Cluster) StartNodeT(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	tok, ok := c.tokens[opts.Name]
	require.True(t, ok, "node %q was not given to StartClusterT", opts.Name)
	kubeconfig, err := c.CP.KubeconfigForToken(tok)
	require.NoError(t, err)
	kc, err := os.ReadFile(kubeconfig)
	require.NoError(t, err)
	api, err := url.Parse(c.CP.URL)
	require.NoError(t, err)
	sockets := t.TempDir()
	startAPIBridgeT(t, filepath.Join(sockets, "api.sock"), api.Host)
	files := nodeFiles(opts.Name, string(kc), api.Host, 10250, 10248)
	for p, content := range opts.Files {
		files[p] = content
	}
	kubelet, err := harness.ToolPath(c.BinDir, "kubelet")
	require.NoError(t, err)
	imgDir := t.TempDir()
	for _, img := range []string{c.Images.Agent, c.Images.Pause} {
		require.NoError(t, os.Link(img, filepath.Join(imgDir, filepath.Base(img))))
	}
	sweepStaleCgroups(t, opts.Name)
	// Registered before the node's own cleanup, so they run after the power-off.
	var nodeDir, cgroups string
	t.Cleanup(func() {
		requireCgroupsGone(t, cgroups)
		requireNoMountsUnder(t, nodeDir)
	})
	start := time.Now()
	hn := hostenv.StartNode(t, hostenv.NodeConfig{
		Name: opts.Name, Root: hostenv.KubeletRootFS(t), Files: files, Symlinks: nodeSymlinks(),
		// containerd's snapshots cannot live on the node's overlay.
		Binds: []string{t.TempDir() + ":/var/lib/containerd"},
		ROBinds: append([]string{kubelet + ":" + kubeletBin, c.loopproxy + ":" + loopproxyBin, sockets + ":" + apiSocketDir,
			imgDir + ":" + imagesDir, "/dev/kmsg"}, opts.ROBinds...),
		// A network namespace with loopback only: no packet can leave the
		// node, and nodes' ports do not collide. The kubelet exits without
		// /dev/kmsg; runc joins a session keyring.
		NspawnArgs: []string{"--private-network", "--capability=CAP_SYSLOG", "--system-call-filter=@keyring",
			"--resolv-conf=off"},
		FreshCgroups: true,
	})
	nodeDir, cgroups = filepath.Dir(hn.ConsoleLog), hn.CgroupPrefix()
	n := &Node{Node: hn, Name: opts.Name, cluster: c}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	require.NoError(t, n.WaitReady(t.Context(), timeout), "node console:\n%s", n.Tail())
	n.requireLoopbackOnly(t)
	t.Logf("node %s: booted and Ready from its boot in %s", n.Name, time.Since(start).Round(10*time.Millisecond))
	return n
}

// requireLoopbackOnly checks what keeps the node's traffic on loopback: its
// resolver is 127.0.0.1, its apt sources are local files, apt's timers are
// masked, and its Node's only address is 127.0.0.1 (so the API server, which
// prefers InternalIP, never looks its name up).
func (n *Node) requireLoopbackOnly(t testing.TB) {
	t.Helper()
	root, err := n.RootDir()
	require.NoError(t, err)
	resolv, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	require.NoError(t, err)
	require.Equal(t, "nameserver 127.0.0.1\n", string(resolv), "the node's resolver")
	sources, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*"))
	for _, file := range append(sources, filepath.Join(root, "etc/apt/sources.list")) {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			require.Regexp(t, `^deb (\[[^]]*\] )?file:`, line, "apt source in %s", file)
		}
	}
	for _, timer := range []string{"apt-daily.timer", "apt-daily-upgrade.timer"} {
		target, err := os.Readlink(filepath.Join(root, "etc/systemd/system", timer))
		require.NoError(t, err, "%s is not masked", timer)
		require.Equal(t, "/dev/null", target, "%s is not masked", timer)
	}
	node, err := n.cluster.CP.Client.CoreV1().Nodes().Get(t.Context(), n.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.ElementsMatch(t, []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: n.Name}},
		node.Status.Addresses)
}

// BootID is the node's current boot id, as its own processes see it.
func (n *Node) BootID() (string, error) {
	root, err := n.RootDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/random/boot_id"))
	if err != nil {
		return "", fmt.Errorf("read the node's boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WaitReady waits until the Node is Ready and its kubelet reports the node's
// current boot id. On the way it does the cloud controller's part: sets the
// InternalIP 127.0.0.1 and lifts the uninitialized taint.
func (n *Node) WaitReady(ctx context.Context, timeout time.Duration) error {
	return n.WaitReadyAfter(ctx, "", timeout)
}

// WaitReadyAfter is WaitReady for a boot other than oldBoot: after a reboot
// request, the old boot may still be running and Ready for a moment.
func (n *Node) WaitReadyAfter(ctx context.Context, oldBoot string, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-n.Exited():
			return false, fmt.Errorf("node %s: its boot loop ended", n.Name)
		default:
		}
		ok, why, err := n.readyFromThisBoot(ctx, oldBoot)
		last = why
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready from its current boot within %s (last: %s): %w", n.Name, timeout, last, err)
	}
	return nil
}

func (n *Node) readyFromThisBoot(ctx context.Context, oldBoot string) (bool, string, error) {
	client := n.cluster.CP.Client
	node, err := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "not registered", nil
	}
	if err != nil {
		return false, err.Error(), nil
	}
	if err := n.initialize(ctx, node); err != nil {
		return false, err.Error(), nil
	}
	boot, err := n.BootID()
	if err != nil {
		return false, err.Error(), nil
	}
	if boot == oldBoot {
		return false, "still in the old boot", nil
	}
	if node.Status.NodeInfo.BootID != boot {
		return false, fmt.Sprintf("kubelet reports boot %q, the node is in boot %q", node.Status.NodeInfo.BootID, boot), nil
	}
	if !NodeReady(node) {
		return false, "not Ready", nil
	}
	return true, "", nil
}

// initialize sets the addresses and removes the uninitialized taint, once.
func (n *Node) initialize(ctx context.Context, node *corev1.Node) error {
	client := n.cluster.CP.Client
	if !slices.ContainsFunc(node.Status.Addresses, func(a corev1.NodeAddress) bool {
		return a.Type == corev1.NodeInternalIP && a.Address == "127.0.0.1"
	}) {
		patch := fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":%q}]}}`, n.Name)
		if _, err := client.CoreV1().Nodes().PatchStatus(ctx, n.Name, []byte(patch)); err != nil {
			return fmt.Errorf("set the node's addresses: %w", err)
		}
	}
	i := slices.IndexFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == uninitializedTaint })
	if i < 0 {
		return nil
	}
	node = node.DeepCopy()
	node.Spec.Taints = slices.Delete(node.Spec.Taints, i, i+1)
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("remove the %s taint: %w", uninitializedTaint, err)
	}
	return nil
}

// NodeReady reports whether the Node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// requireCgroupsGone checks that the node's boot loop removed the cgroups of
// its boots (named with prefix, see hostenv FreshCgroups) in every
// hierarchy. A loop that was killed cannot: those are removed here, and the
// test fails only if one cannot be.
func requireCgroupsGone(t testing.TB, prefix string) {
	if prefix == "" {
		return
	}
	var left []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), prefix) {
			left = append(left, path)
			return filepath.SkipDir
		}
		return nil
	})
	for _, dir := range left {
		t.Logf("a node's boot loop left cgroup %s; removing it", dir)
		if err := removeCgroup(dir); err != nil {
			t.Error(err)
		}
	}
}

// sweepStaleCgroups removes the cgroups that boot loops of a node named name
// left when their test process was killed (a timeout runs no cleanup): those
// of loops whose PID no longer runs. They are empty; one that is not stays.
func sweepStaleCgroups(t testing.TB, name string) {
	stale := regexp.MustCompile("^" + regexp.QuoteMeta(name) + `-([0-9]+)-boot[0-9]+$`)
	var dirs []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		m := stale.FindStringSubmatch(d.Name())
		if m == nil {
			return nil
		}
		if _, err := os.Stat("/proc/" + m[1]); errors.Is(err, os.ErrNotExist) {
			dirs = append(dirs, path)
		}
		return filepath.SkipDir
	})
	for _, dir := range dirs {
		if err := removeCgroup(dir); err != nil {
			t.Logf("stale cgroup of an ended boot loop kept: %v", err)
			continue
		}
		t.Logf("removed %s, left by a boot loop that was killed", dir)
	}
}

// removeCgroup removes an empty cgroup tree, children first.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}

// readSysctls reads the machine's values of the tunables a kubelet would set.
func readSysctls(t testing.TB) map[string]string {
	t.Helper()
	values := map[string]string{}
	for _, kv := range kernelTunables() {
		b, err := os.ReadFile("/proc/sys/" + kv[0])
		require.NoError(t, err)
		values[kv[0]] = strings.TrimSpace(string(b))
	}
	return values
}

// requireNoMountsUnder fails the test if the machine's mount table has a
// mount point under dir (the node mounts only in its own mount namespace).
func requireNoMountsUnder(t testing.TB, dir string) {
	if dir == "" {
		return
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Errorf("a mount of the node is left on the machine: %s", line)
		}
	}
}
