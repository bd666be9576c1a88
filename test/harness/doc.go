// Package harness runs a real Kubernetes control plane for end-to-end tests
// and the demo: etcd and kube-apiserver on 127.0.0.1 with free ports,
// optionally kube-controller-manager, kube-scheduler and kwok (which plays
// the kubelet for nodes annotated kwok.x-k8s.io/node=fake). The binaries
// come from hack/build-tools.sh (EnsureTools). Every component runs in its
// own process group, logs to a file in the control plane's folder, and is
// stopped by its PID.
//
// The API takes contexts and returns errors so that non-test code (the
// demo) can use it; the ...T functions wrap it for tests.
package harness
