// Command kiln turns recipes into cloud-init seeds and golden VM images.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCommand()
	cmd, err := root.ExecuteContextC(ctx)
	stop()
	os.Exit(reportError(cmd, os.Stderr, err))
}
