// Command demo runs a live rolling reboot on a local control plane with simulated
// nodes: `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodepatch/nodepatch/test/rollout"
)

func main() {
	o := rollout.Options{Out: os.Stdout}
	flag.IntVar(&o.Nodes, "nodes", 6, "simulated nodes")
	flag.IntVar(&o.Concurrency, "concurrency", 2, "nodes rebooting at once")
	flag.DurationVar(&o.RebootDuration, "reboot-duration", 5*time.Second, "how long a simulated reboot takes")
	flag.BoolVar(&o.Controllers, "controllers", true, "run kube-controller-manager and kube-scheduler so that evicted pods move")
	flag.BoolVar(&o.RolloutController, "rollout-controller", true, "run the rollout controller (nodepatch controller) and have the agents wait for its admission; false: the agents race for the lock's slots")
	verbose := flag.Bool("v", false, "show build and component output")
	flag.Parse()
	o.Log = io.Discard
	if *verbose {
		o.Log = os.Stderr
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		o.Live = true
	}
	// Ctrl-C cancels the context; Run stops everything it started before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	summary, err := rollout.Run(ctx, o)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "\ndemo interrupted; everything it started has been stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	fmt.Println("\nsummary:", summary)
}
