package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodepatch/nodepatch/pkg/controller"
)

func newControllerCommand() *cobra.Command {
	o := controller.Options{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the rollout controller (leader-elected; admits nodes to reboot cycles)",
		Long: "Run the rollout controller. Replicas elect a leader on a Lease; the leader decides which\n" +
			"nodes may start a reboot cycle (agents run with --admission=controller) and keeps the limit\n" +
			"on the lock's header Lease. Every flag can also be set with NODEPATCH_<FLAG>.",
		Args:    cobra.NoArgs,
		PreRunE: envThenValidate(func() error { _, err := o.Validate(); return err }),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return controller.Start(cmd.Context(), o, newLogger(o.LogFormat))
		},
	}
	bindControllerFlags(cmd.Flags(), &o)
	return cmd
}

func bindControllerFlags(f *pflag.FlagSet, o *controller.Options) {
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	f.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the lock's Leases (default $POD_NAMESPACE)")
	f.StringVar(&o.LockName, "lock-name", "nodepatch-lock", "name of the agents' lock (its header Lease)")
	f.StringVar(&o.MetricsAddress, "metrics-address", ":8080", "address serving /metrics, /healthz and /readyz")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.Identity, "identity", controller.DefaultIdentity(), "this replica's name in the leader election (default $POD_NAME, else the host name)")
	f.StringVar(&o.ElectionLease, "election-lease", "nodepatch-controller", "the Lease the replicas elect a leader on")
	f.StringVar(&o.MaxUnavailable, "max-unavailable", "1", "nodes out at once: a number, or a percentage of the nodes (NotReady nodes and others' cordons count)")
	f.StringArrayVar(&o.MaxUnavailablePer, "max-unavailable-per", nil, "KEY=N: at most N nodes out per value of label KEY (repeatable), e.g. topology.kubernetes.io/zone=1")
	f.StringVar(&o.ControlPlane, "control-plane", "last", "when control-plane nodes go: last, first or any (always one at a time)")
	f.StringVar(&o.FailureBudget, "failure-budget", "", "N/DURATION: pause the rollout after N failed cycles within DURATION, e.g. 3/1h; empty: never")
	f.StringVar(&o.PoolsConfigMap, "pools-configmap", "", "ConfigMap (in --namespace) of per-pool policies, one key per pool, watched: edits apply without a restart; empty: no pools")
	f.DurationVar(&o.AdmissionTimeout, "admission-timeout", 5*time.Minute, "revoke an admission that no cycle followed within this long")
	f.Float32Var(&o.APIQPS, "kube-api-qps", 50, "the controller's limit on its API requests per second, and apart on its Events (an admission is a Node patch and an Event)")
	f.IntVar(&o.APIBurst, "kube-api-burst", 100, "the controller's burst of API requests above --kube-api-qps")
}
