package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
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
			st, err := readStatus(cmd.Context(), client, c)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return st.print(cmd.OutOrStdout(), time.Now())
		},
	}
	c.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// clusterStatus is what `nodepatch status` shows.
type clusterStatus struct {
	Lock  lockStatus   `json:"lock"`
	Nodes []nodeStatus `json:"nodes"`
}

type lockStatus struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Slots     int      `json:"slots"`
	Holders   []string `json:"holders"`
	Paused    string   `json:"paused,omitempty"`
}

type nodeStatus struct {
	Name       string    `json:"name"`
	Phase      string    `json:"phase"`
	Ready      bool      `json:"ready"`
	Cordoned   string    `json:"cordoned"`
	HoldsLock  bool      `json:"holdsLock"`
	Blocked    string    `json:"blocked,omitempty"`
	Forced     bool      `json:"forced,omitempty"`
	LastReboot time.Time `json:"lastReboot,omitzero"`
	CycleSince time.Time `json:"cycleStarted,omitzero"`
	Malformed  string    `json:"malformedAnnotations,omitempty"`
	RetryAfter time.Time `json:"retryAfter,omitzero"`
}

func readStatus(ctx context.Context, client kubernetes.Interface, c clusterFlags) (clusterStatus, error) {
	leases, err := client.CoordinationV1().Leases(c.namespace).List(ctx, metav1.ListOptions{LabelSelector: lock.Selector(c.lockName).String()})
	if err != nil {
		return clusterStatus{}, fmt.Errorf("reading the lock in namespace %s: %w", c.namespace, err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return clusterStatus{}, fmt.Errorf("listing nodes: %w", err)
	}
	st := clusterStatus{Lock: summarizeLock(leases.Items, c)}
	holders := map[string]bool{}
	for _, h := range st.Lock.Holders {
		holders[strings.SplitN(h, " ", 2)[0]] = true
	}
	for i := range nodes.Items {
		st.Nodes = append(st.Nodes, summarizeNode(&nodes.Items[i], holders))
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st, nil
}

func summarizeLock(leases []coordinationv1.Lease, c clusterFlags) lockStatus {
	ls := lockStatus{Namespace: c.namespace, Name: c.lockName}
	for _, l := range leases {
		if l.Name == c.lockName {
			ls.Paused = l.Annotations[state.AnnotationPause]
			continue
		}
		ls.Slots++
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			ls.Holders = append(ls.Holders, *l.Spec.HolderIdentity+" ("+l.Name+")")
		}
	}
	return ls
}

func summarizeNode(node *corev1.Node, holders map[string]bool) nodeStatus {
	st, parseErr := state.Parse(node.Annotations)
	ns := nodeStatus{
		Name: node.Name, Phase: string(st.Phase), HoldsLock: holders[node.Name], Blocked: st.BlockReason,
		Forced: st.Force, LastReboot: st.LastReboot, CycleSince: st.CycleStarted, RetryAfter: st.RetryAfter,
		Cordoned: "no",
	}
	if ns.Phase == "" {
		ns.Phase = "Idle"
	}
	if parseErr != nil {
		ns.Malformed = parseErr.Error()
	}
	if node.Spec.Unschedulable {
		ns.Cordoned = "by operator"
		if st.CordonedByUs {
			ns.Cordoned = "by nodepatch"
		}
	}
	if nodeops.HasTaint(node) && ns.Cordoned == "no" {
		ns.Cordoned = "tainted only"
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ns.Ready = cond.Status == corev1.ConditionTrue
		}
	}
	return ns
}

func (s clusterStatus) print(w io.Writer, now time.Time) error {
	paused := "no"
	if s.Lock.Paused != "" {
		paused = fmt.Sprintf("yes (%s)", s.Lock.Paused)
	}
	fmt.Fprintf(w, "lock %s/%s: %d of %d slots held; paused: %s\n\n", s.Lock.Namespace, s.Lock.Name, len(s.Lock.Holders), s.Lock.Slots, paused)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPHASE\tREADY\tCORDONED\tLOCK\tBLOCKED\tFORCED\tLAST REBOOT\tNOTE")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\t%t\t%s\t%s\n", n.Name, n.Phase, n.Ready, n.Cordoned, yesNo(n.HoldsLock),
			dash(n.Blocked), n.Forced, ago(now, n.LastReboot), n.note(now))
	}
	return tw.Flush()
}

func (n nodeStatus) note(now time.Time) string {
	switch {
	case n.Malformed != "":
		return "malformed: " + n.Malformed
	case n.Phase == string(state.PhaseFailed):
		return "reboot failed; see Events; remove annotation " + state.AnnotationPhase + " to retry"
	case !n.CycleSince.IsZero():
		return "in cycle for " + now.Sub(n.CycleSince).Round(time.Second).String()
	case now.Before(n.RetryAfter):
		return "drain failed; retry in " + n.RetryAfter.Sub(now).Round(time.Second).String()
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "held"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
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
