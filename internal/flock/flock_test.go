package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held lock was taken again: %v", err)
	}
	unlock()
	again, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	again()
}

func TestShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	r1, err := Shared(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Shared(context.Background(), p)
	if err != nil {
		t.Fatalf("a second reader was refused: %v", err)
	}
	if _, err := TryLock(p); !errors.Is(err, ErrBusy) {
		t.Fatalf("a writer got the lock under readers: %v", err)
	}
	r1()
	if _, err := TryLock(p); !errors.Is(err, ErrBusy) {
		t.Fatalf("a writer got the lock under one reader: %v", err)
	}
	r2()
	w, err := TryLock(p)
	if err != nil {
		t.Fatalf("no readers left, writer refused: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Shared(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a reader got the lock under a writer: %v", err)
	}
	w()
}
