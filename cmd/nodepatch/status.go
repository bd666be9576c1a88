package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/pkg/status"
	"github.com/nodepatch/nodepatch/pkg/version"
)

// clusterFlags are the flags of the commands an operator runs against a cluster.
type clusterFlags struct {
	kubeconfig, namespace, lockName string
}

func (c *clusterFlags) bind(cmd *cobra.Command) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "nodepatch"
	}
	cmd.Flags().StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVarP(&c.namespace, "namespace", "n", ns, "namespace nodepatch runs in")
	cmd.Flags().StringVar(&c.lockName, "lock-name", "nodepatch-lock", "name of the lock")
}

// client follows kubectl's rules: --kubeconfig, else $KUBECONFIG (a list of
// files), else ~/.kube/config.
func (c *clusterFlags) client() (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "nodepatch/" + version.Version
	return kubernetes.NewForConfig(cfg)
}

func newStatusCommand() *cobra.Command {
	var c clusterFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node's reboot phase, the lock's holders and what blocks whom",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			client, err := c.client()
			if err != nil {
				return err
			}
			st, err := status.Read(cmd.Context(), client, c.namespace, c.lockName)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return st.Print(cmd.OutOrStdout(), time.Now())
		},
	}
	c.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newPauseCommand() *cobra.Command {
	var c clusterFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Pause every node: no new reboot cycle starts (cycles under way finish)",
		Long: "Pause every node. Same as:\n  kubectl -n NAMESPACE annotate --overwrite lease nodepatch-lock " +
			state.AnnotationPause + "=REASON",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason %q: say why, so that others know who paused and why", reason)
			}
			return setPause(cmd.Context(), c, &reason)
		},
	}
	c.bind(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown in status, metrics and Events)")
	return cmd
}

func newResumeCommand() *cobra.Command {
	var c clusterFlags
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Lift a pause",
		Long:  "Lift a pause. Same as:\n  kubectl -n NAMESPACE annotate lease nodepatch-lock " + state.AnnotationPause + "-",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return setPause(cmd.Context(), c, nil) },
	}
	c.bind(cmd)
	return cmd
}

// setPause writes (or, with nil, removes) the pause annotation on the lock's
// header Lease, creating the Lease when nodepatch has not yet.
func setPause(ctx context.Context, c clusterFlags, reason *string) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{state.AnnotationPause: reason}}})
	leases := client.CoordinationV1().Leases(c.namespace)
	_, err = leases.Patch(ctx, c.lockName, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) && reason != nil {
		header := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: c.lockName, Namespace: c.namespace,
			Labels: map[string]string{lock.LabelLock: c.lockName}, Annotations: map[string]string{state.AnnotationPause: *reason}}}
		_, err = leases.Create(ctx, header, metav1.CreateOptions{})
	}
	if err != nil && !(apierrors.IsNotFound(err) && reason == nil) {
		return fmt.Errorf("writing the pause on lease %s/%s: %w", c.namespace, c.lockName, err)
	}
	return nil
}
