// Command kiln turns recipes into cloud-init seeds and golden VM images.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-project/kiln/internal/inheritfd"
)

func main() {
	inheritfd.CloseOnExec() // before anything runs a program
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCommand()
	cmd, err := root.ExecuteContextC(ctx)
	stop()
	os.Exit(reportError(cmd, os.Stderr, err))
}
