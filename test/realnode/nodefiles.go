package realnode

import (
	"fmt"
	"strings"
)

// Paths inside the node.
const (
	imagesDir      = "/opt/realnode/images"
	kubeletBin     = "/usr/local/bin/kubelet"
	kubeletConfig  = "/etc/kubernetes/kubelet-config.yaml"
	kubeletKubecfg = "/etc/kubernetes/kubelet.conf"
	loopproxyBin   = "/usr/local/bin/realnode-loopproxy"
	apiSocketDir   = "/run/realnode-api"
	wants          = "/etc/systemd/system/multi-user.target.wants/"
)

// TestTaint is the taint every real node is registered with. Only the tests'
// own pods tolerate it: anything else would need a pod network this node does
// not have (it must run only hostNetwork pods, see the package comment).
const (
	TestTaintKey   = "realnode.nodepatch.io/test"
	TestTaintValue = "true"
)

// kernelTunables returns the sysctls the kubelet sets to its liking when they
// differ (pkg/kubelet/cm: setupKernelTunables). /proc/sys is the machine's
// kernel, so the node's setup unit binds files holding these values over them:
// the kubelet reads what it wants and writes nothing.
func kernelTunables() [][2]string {
	return [][2]string{
		{"vm/overcommit_memory", "1"},
		{"vm/panic_on_oom", "0"},
		{"kernel/panic", "10"},
		{"kernel/panic_on_oops", "1"},
		{"kernel/keys/root_maxkeys", "1000000"},
		{"kernel/keys/root_maxbytes", "25000000"},
	}
}

// setupScript runs before containerd and the kubelet at each boot. nspawn
// mounts the cgroup v1 controllers read-only; the kubelet and runc create
// cgroups there (inside this boot's own subtree, see hostenv FreshCgroups).
func setupScript() string {
	var b strings.Builder
	b.WriteString(`set -eu
awk '$3 == "cgroup" && $4 ~ /(^|,)ro(,|$)/ {print $2}' /proc/self/mounts | while read -r d; do
  mount -o remount,bind,rw "$d"
done
mkdir -p /run/realnode/sysctl
`)
	for _, kv := range kernelTunables() {
		f := "/run/realnode/sysctl/" + strings.ReplaceAll(kv[0], "/", "_")
		fmt.Fprintf(&b, "echo %s >%s && mount --bind %s /proc/sys/%s\n", kv[1], f, f, kv[0])
	}
	return b.String()
}

const setupUnit = `[Unit]
Description=realnode: writable cgroups, stand-in kernel tunables
DefaultDependencies=no
After=local-fs.target
Before=containerd.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /etc/realnode/setup.sh
`

const importUnit = `[Unit]
Description=realnode: import the test's images into containerd
Requires=containerd.service
After=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for i in ` + imagesDir + `/*.tar; do ctr -n k8s.io images import "$i" || exit 1; done'
`

// apiProxyUnit serves the API server at the machine's loopback address
// inside the node's own network namespace (see loopproxy).
func apiProxyUnit(apiAddr string) string {
	return fmt.Sprintf(`[Unit]
Description=realnode: the API server on this node's loopback
Before=kubelet.service

[Service]
ExecStart=%s -listen %s -to %s/api.sock
Restart=always
RestartSec=1
`, loopproxyBin, apiAddr, apiSocketDir)
}

func kubeletUnit(name string) string {
	return fmt.Sprintf(`[Unit]
Description=kubelet
Wants=containerd.service realnode-setup.service realnode-images.service realnode-apiproxy.service
After=containerd.service realnode-setup.service realnode-images.service realnode-apiproxy.service

[Service]
# --cloud-provider=external: the kubelet refuses a loopback node IP, so the
# test plays the cloud controller and sets the InternalIP 127.0.0.1 itself.
ExecStart=%s --config=%s --kubeconfig=%s --hostname-override=%s --cloud-provider=external --register-with-taints=%s=%s:NoSchedule --v=1
Restart=always
RestartSec=1
`, kubeletBin, kubeletConfig, kubeletKubecfg, name, TestTaintKey, TestTaintValue)
}

// kubeletConfiguration listens on the node's loopback only.
func kubeletConfiguration(port, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: 127.0.0.1
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
readOnlyPort: 0
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: /etc/resolv.conf
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
`, port, healthzPort)
}

// containerdConfig: a locally built sandbox image; no oom_score_adj below
// containerd's own (root here lacks CAP_SYS_RESOURCE: runc would fail with
// "can't get final child's PID from pipe"); cgroupfs like the kubelet.
const containerdConfig = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + PauseImage + `"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`

// loopbackCNI makes containerd report the network ready (and so the Node
// Ready) without a pod network: only hostNetwork pods run here.
const loopbackCNI = `{"cniVersion": "1.0.0", "name": "realnode-loopback", "plugins": [{"type": "loopback"}]}
`

// nodeFiles are the files a node boots with.
func nodeFiles(name, kubeconfig, apiAddr string, port, healthzPort int) map[string]string {
	return map[string]string{
		"/etc/resolv.conf":                              "nameserver 127.0.0.1\n",
		"/etc/realnode/setup.sh":                        setupScript(),
		"/etc/systemd/system/realnode-setup.service":    setupUnit,
		"/etc/systemd/system/realnode-images.service":   importUnit,
		"/etc/systemd/system/kubelet.service":           kubeletUnit(name),
		"/etc/systemd/system/realnode-apiproxy.service": apiProxyUnit(apiAddr),
		kubeletConfig:                         kubeletConfiguration(port, healthzPort),
		kubeletKubecfg:                        kubeconfig,
		"/etc/containerd/config.toml":         containerdConfig,
		"/etc/cni/net.d/10-loopback.conflist": loopbackCNI,
	}
}

func nodeSymlinks() map[string]string {
	links := map[string]string{}
	for _, u := range []string{"realnode-setup.service", "realnode-images.service", "realnode-apiproxy.service", "kubelet.service"} {
		links[wants+u] = "/etc/systemd/system/" + u
	}
	return links
}
