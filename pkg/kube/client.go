// Package kube builds the API client every nodepatch command uses.
package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepatch/nodepatch/pkg/version"
)

// Rate is a client's own limit on its requests: QPS on average, in bursts of
// up to Burst. Zero values keep client-go's defaults (5 and 10).
type Rate struct {
	QPS   float32
	Burst int
}

// NewClient builds a clientset from a kubeconfig file, or in-cluster when it is
// empty, that names itself component/version to the API server and keeps to
// rate. count, when not nil, hears of every request it makes.
func NewClient(kubeconfig, component string, rate Rate, count CountFunc) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.UserAgent = component + "/" + version.Version
	if rate.QPS > 0 {
		cfg.QPS = rate.QPS
	}
	if rate.Burst > 0 {
		cfg.Burst = rate.Burst
	}
	if count != nil {
		cfg.Wrap(Counting(count))
	}
	return kubernetes.NewForConfig(cfg)
}
