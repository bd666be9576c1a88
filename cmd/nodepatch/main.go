// Command nodepatch patches a Kubernetes node's OS and reboots nodes safely, a few
// at a time, under a cluster-wide lock.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nodepatch:", err)
		os.Exit(1)
	}
}
