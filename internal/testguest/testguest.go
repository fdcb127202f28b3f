// Package testguest boots test guests one at a time across the machine:
// its Runner is a boot.Runner whose QEMU holds the VM slot
// (testutil.TakeVMSlot) from start to exit, so test packages running in
// parallel overlap their bakes and checks with another's guest, never two
// guests.
package testguest

import (
	"context"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testutil"
)

// Runner returns a boot.Runner for tests.
func Runner() boot.Runner {
	return boot.Runner{Launch: Launch}
}

// Launch starts QEMU once this process holds the VM slot, and releases
// the slot when QEMU exits.
func Launch(ctx context.Context, cfg qemu.Config, work string) (boot.Machine, error) {
	wait, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	release, err := testutil.TakeVMSlot(wait)
	if err != nil {
		return nil, err
	}
	m, err := qemu.Start(ctx, cfg, work)
	if err != nil {
		release()
		return nil, err
	}
	go func() {
		<-m.Done()
		release()
	}()
	return m, nil
}
