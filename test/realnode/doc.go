// Package realnode runs real Kubernetes nodes for end-to-end tests: a kubelet
// (built by hack/build-tools.sh from the hack/tools module) with Debian's
// containerd and runc, inside a Debian root (hack/rootfs.sh node) booted by
// systemd-nspawn, against the harness's real control plane. A node reboots for
// real through its systemd and comes back with a new boot id.
//
// Everything stays on loopback: each node has a network namespace of its own
// with nothing but its loopback (it reaches the API server at the machine's
// loopback address through a unix socket, see loopproxy), its resolver is
// 127.0.0.1, its apt sources are local files, and only hostNetwork pods run
// on it (its CNI config is the loopback plugin alone). Nodes' ports do not
// collide, so a DaemonSet's pods bind the same port on every node. The kubelet runs only inside the node, whose /proc/sys is
// read-only and whose kernel tunables are stand-in files, so the machine's
// sysctls, mounts and cgroups are left as they were.
//
// The kubelet refuses a loopback node IP, so it runs with
// --cloud-provider=external and the harness does a cloud controller's part:
// it sets the Node's InternalIP to 127.0.0.1 and lifts the uninitialized
// taint. The API server prefers InternalIP addresses and never looks a node's
// name up in DNS; it has no reason to dial a kubelet here anyway (the tests
// read container logs from the node's /var/log/pods).
//
// Images are built without a container engine (ociimage, also from
// hack/tools) and imported into the node's containerd at every boot.
package realnode
