package boot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/guestssh"
)

// Login logs in to the guest's forwarded SSH port as user and waits until
// a command really runs: early in boot sshd may accept a login whose
// commands produce nothing (logins not yet permitted, sshd restarted by
// cloud-init with new host keys). It gives up when ctx ends or the VM
// stops.
func (vm *VM) Login(ctx context.Context, user string, key *guestssh.Key) (*guestssh.Client, error) {
	addr, err := vm.Addr(22)
	if err != nil {
		return nil, err
	}
	alive := func() error { return vm.Alive(ctx) }
	for {
		client, err := guestssh.Dial(ctx, addr, user, key, alive)
		if err != nil {
			return nil, err
		}
		out, _, err := client.Run(ctx, "echo kiln-ready")
		if err == nil && strings.Contains(out, "kiln-ready") {
			return client, nil
		}
		client.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("logged in, but commands did not run: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
}

// RootExec runs shell commands as root through client, with sudo: the
// login user has passwordless sudo in the seed kiln makes for it.
func RootExec(client *guestssh.Client) Exec {
	return func(ctx context.Context, shell string) (string, int, error) {
		return client.Run(ctx, "sudo -n sh -c "+ShellQuote(shell))
	}
}

// ShellQuote quotes s as one word for /bin/sh.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }
