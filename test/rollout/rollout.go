// Package rollout runs a whole rolling reboot on a local control plane with
// simulated nodes: the `make demo` program and the rollout benchmark share it.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// Options shape a rollout.
type Options struct {
	Nodes          int
	Concurrency    int
	RebootDuration time.Duration
	// Controllers runs kube-controller-manager and kube-scheduler, so that evicted
	// pods come back on other nodes and the budget is computed for real.
	Controllers bool
	// RolloutController runs `nodepatch controller` (one replica, at
	// --max-unavailable=Concurrency) and the agents with --admission=controller:
	// the controller decides who goes next. Without it the agents race for the
	// lock's slots on their own.
	RolloutController bool
	Timeout           time.Duration
	Out               io.Writer // live view and summary
	Log               io.Writer // build and component progress
	Live              bool      // redraw a table in place (a terminal), instead of printing changes
}

// Summary is what a rollout measured.
type Summary struct {
	Nodes, Rebooted int
	Wall            time.Duration
	MeanDrain       time.Duration
	Ideal           time.Duration
	MaxHolders      int
	MaxOutOfService int
	Concurrency     int
	RebootDuration  time.Duration
	// Admissions are the rollout controller's Admitted Events; zero without it.
	Admissions int
}

// Ratio is wall time over ideal time.
func (s Summary) Ratio() float64 { return s.Wall.Seconds() / s.Ideal.Seconds() }

func (s Summary) String() string {
	line := fmt.Sprintf("rebooted %d/%d nodes in %s; ideal %s = ceil(%d/%d) x (drain %s + reboot %s); ratio %.2f; "+
		"at most %d lock holders and %d nodes out of service at once (concurrency %d)",
		s.Rebooted, s.Nodes, s.Wall.Round(100*time.Millisecond), s.Ideal.Round(100*time.Millisecond), s.Nodes, s.Concurrency,
		s.MeanDrain.Round(10*time.Millisecond), s.RebootDuration, s.Ratio(), s.MaxHolders, s.MaxOutOfService, s.Concurrency)
	if s.Admissions > 0 {
		line += fmt.Sprintf("; %d admissions by the rollout controller", s.Admissions)
	}
	return line
}

const (
	namespace = "nodepatch"
	lockName  = "nodepatch-lock" // the agents' and the controller's default --lock-name
)

// Run builds what it needs, starts a control plane, registers the nodes with a
// workload, runs an agent per node, makes every node need a reboot and waits until
// all have rebooted. Everything it started is stopped when it returns.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Nodes < 1 || o.Concurrency < 1 {
		return Summary{}, fmt.Errorf("nodes %d and concurrency %d must be positive", o.Nodes, o.Concurrency)
	}
	fmt.Fprintln(o.Out, "building nodepatch and the control plane (cached after the first run)...")
	dir, err := os.MkdirTemp("", "nodepatch-rollout-")
	if err != nil {
		return Summary{}, err
	}
	if os.Getenv("NODEPATCH_KEEP_ROLLOUT") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(o.Out, "keeping the hosts' folders and agent logs in", dir)
	}
	bin, err := harness.BuildNodepatch(ctx, dir)
	if err != nil {
		return Summary{}, err
	}
	fmt.Fprintln(o.Out, "starting etcd, kube-apiserver, kwok"+map[bool]string{true: ", kube-controller-manager, kube-scheduler", false: ""}[o.Controllers]+" on 127.0.0.1...")
	cp, err := harness.StartControlPlane(ctx, harness.Options{Kwok: true, Controllers: o.Controllers, Log: o.Log})
	if err != nil {
		return Summary{}, err
	}
	defer cp.Stop()
	return run(ctx, o, cp, bin, dir)
}

func run(ctx context.Context, o Options, cp *harness.ControlPlane, bin, dir string) (Summary, error) {
	client := cp.Client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return Summary{}, fmt.Errorf("creating namespace: %w", err)
	}
	flags := []string{fmt.Sprintf("--concurrency=%d", o.Concurrency), "--drain-timeout=2m", "--reboot-timeout=2m"}
	if o.RolloutController {
		flags = append(flags, "--admission=controller")
	}
	sup, err := sim.NewSupervisor(client, sim.Options{
		Binary: bin, Kubeconfig: cp.AdminKubeconfig, Namespace: namespace, Dir: dir, RebootDuration: o.RebootDuration,
		ExtraFlags: flags, Log: o.Log,
	})
	if err != nil {
		return Summary{}, err
	}
	defer sup.Stop()
	fmt.Fprintf(o.Out, "registering %d simulated nodes with a workload and a PodDisruptionBudget...\n", o.Nodes)
	var names []string
	for i := range o.Nodes {
		name := fmt.Sprintf("node-%02d", i)
		if _, err := sup.AddNode(ctx, name, nil); err != nil {
			return Summary{}, err
		}
		names = append(names, name)
	}
	if err := addWorkload(ctx, client, o); err != nil {
		return Summary{}, err
	}
	watcher, err := sim.StartWatcher(ctx, client, namespace)
	if err != nil {
		return Summary{}, err
	}
	var ctl *harness.Process
	if o.RolloutController {
		fmt.Fprintf(o.Out, "starting the rollout controller (nodepatch controller --max-unavailable=%d)...\n", o.Concurrency)
		if ctl, err = startController(ctx, client, cp.AdminKubeconfig, bin, dir, o.Concurrency); err != nil {
			return Summary{}, err
		}
		defer func() { _ = ctl.Stop(10 * time.Second) }()
	}
	if err := sup.StartAgents(); err != nil {
		return Summary{}, err
	}
	if o.RolloutController {
		fmt.Fprintf(o.Out, "every node now needs a reboot; the rollout controller admits them, %d at a time:\n", o.Concurrency)
	} else {
		fmt.Fprintf(o.Out, "every node now needs a reboot; %d at a time:\n", o.Concurrency)
	}
	start := time.Now()
	for _, n := range names {
		if err := sup.Host(n).SetRebootRequired(); err != nil {
			return Summary{}, err
		}
	}
	view := newView(o.Out, o.Live, start)
	if err := waitAll(ctx, o, client, sup, ctl, len(names), view); err != nil {
		return Summary{}, err
	}
	wall := time.Since(start)
	s := Summary{Nodes: o.Nodes, Wall: wall, MaxHolders: watcher.MaxHolders(), MaxOutOfService: watcher.MaxCordoned(),
		Concurrency: o.Concurrency, RebootDuration: o.RebootDuration}
	for _, n := range names {
		s.Rebooted += min(sup.Reboots(n), 1)
	}
	s.MeanDrain, err = MeanDrain(ctx, client)
	if err != nil {
		return s, err
	}
	s.Ideal = Ideal(o.Nodes, o.Concurrency, s.MeanDrain, o.RebootDuration)
	if o.RolloutController {
		if s.Admissions, err = Admissions(ctx, client); err != nil {
			return s, err
		}
	}
	return s, sup.Err()
}

// addWorkload runs a Deployment of two pods per node, spread over the nodes by the
// scheduler when it runs, and a budget allowing one disruption at a time. Without
// controllers it places the pods itself.
func addWorkload(ctx context.Context, client kubernetes.Interface, o Options) error {
	replicas := int32(2 * o.Nodes)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:  []corev1.Container{{Name: "web", Image: "web"}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists}},
				},
			},
		},
	}
	if !o.Controllers {
		return nil // no scheduler: a Deployment's pods would stay Pending
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the workload: %w", err)
	}
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	if _, err := client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the budget: %w", err)
	}
	return waitFor(ctx, time.Minute, "the workload to run", func() (bool, error) {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == replicas, err
	})
}

// waitAll shows the rollout until every node has rebooted and is back in
// service; an agent's or the controller's exit ends it early.
func waitAll(ctx context.Context, o Options, client kubernetes.Interface, sup *sim.Supervisor, ctl *harness.Process, nodes int, view *view) error {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	return waitFor(ctx, timeout, "every node to reboot", func() (bool, error) {
		f, err := observe(ctx, client, sup)
		if err != nil {
			return false, err
		}
		rows, done := f.rows()
		view.show(f, rows)
		if err := sup.Err(); err != nil {
			return false, err
		}
		if err := controllerErr(ctl); err != nil {
			return false, err
		}
		return done == nodes, nil
	})
}

var drainedIn = regexp.MustCompile(`drained in ([0-9.]+[a-zµ]+)`)

// Ideal is the time a rollout of nodes, limit at a time, takes if nothing but
// the drains and the reboots takes time: ceil(nodes/limit) x (drain + reboot).
func Ideal(nodes, limit int, drain, reboot time.Duration) time.Duration {
	waves := math.Ceil(float64(nodes) / float64(limit))
	return time.Duration(waves * float64(drain+reboot))
}

// MeanDrain averages the drain times the agents reported in their Events:
// Rebooting says it when the reboot follows the drain at once, Drained
// otherwise.
func MeanDrain(ctx context.Context, client kubernetes.Interface) (time.Duration, error) {
	events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("reading drain Events: %w", err)
	}
	var total time.Duration
	n := 0
	for _, e := range events.Items {
		if e.Reason != "Drained" && e.Reason != "Rebooting" {
			continue
		}
		if m := drainedIn.FindStringSubmatch(e.Message); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				total += d * time.Duration(max(e.Count, 1))
				n += int(max(e.Count, 1))
			}
		}
	}
	if n == 0 {
		return 0, errors.New("no Drained or Rebooting Events to measure drains by")
	}
	return total / time.Duration(n), nil
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
