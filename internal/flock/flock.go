// Package flock takes advisory locks on files, waiting until a context
// ends: how concurrent kiln processes share a cache. Exclusive locks are
// for writers (building, pruning an entry), shared locks for readers
// (using an entry), so a prune never removes what a running build reads.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrBusy is returned by the Try functions when another holder has the lock.
var ErrBusy = errors.New("flock: held by another process")

// Lock takes an exclusive lock on path (created if needed), polling while
// another process holds it (exclusively or shared), until ctx ends. Call
// the returned function to release it. A lock dies with its process, so a
// killed holder never blocks anyone.
//
// Locks are per open file: two Lock calls on one path in one process
// exclude each other too.
func Lock(ctx context.Context, path string) (func(), error) {
	return lock(ctx, path, syscall.LOCK_EX)
}

// Shared takes a shared lock on path: any number of holders, but none
// while an exclusive lock is held (and no exclusive lock while any is).
func Shared(ctx context.Context, path string) (func(), error) {
	return lock(ctx, path, syscall.LOCK_SH)
}

// TryLock takes an exclusive lock on path without waiting, or returns
// ErrBusy.
func TryLock(path string) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	unlock, err := lock(ctx, path, syscall.LOCK_EX)
	if errors.Is(err, context.Canceled) {
		return nil, ErrBusy
	}
	return unlock, err
}

func lock(ctx context.Context, path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
