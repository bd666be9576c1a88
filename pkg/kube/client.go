// Package kube builds the API client every nodepatch command uses.
package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepatch/nodepatch/pkg/version"
)

// NewClient builds a clientset from a kubeconfig file, or in-cluster when it is
// empty, that names itself component/version to the API server. count, when
// not nil, hears of every request it makes.
func NewClient(kubeconfig, component string, count CountFunc) (kubernetes.Interface, error) {
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
	if count != nil {
		cfg.Wrap(Counting(count))
	}
	return kubernetes.NewForConfig(cfg)
}
