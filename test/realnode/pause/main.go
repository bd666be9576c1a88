// Command pause is the sandbox ("pause") image's process for the real-node
// tests: it holds a pod's namespaces and does nothing until it is told to stop.
// containerd's sandbox_image points at an image built from it, so no image is
// ever pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
