package registry

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln/internal/progress"
)

// Ctrl-C in the middle of a push: the push stops with context.Canceled,
// the tag does not appear, and the next push completes.
func TestPushCancelled(t *testing.T) {
	img, _ := bigTestImage(t, "web", 1, 8<<20)
	ref, err := ParseRef("oci:" + filepath.Join(t.TempDir(), "store") + ":web")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := New(Options{Progress: progress.Func(func(e progress.Event) {
		if e.Step == "push" && e.Kind == progress.Advance && e.Done > 0 {
			cancel()
		}
	})})
	if _, err := c.Push(ctx, PushRequest{Image: img, Ref: ref}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if _, err := New(Options{}).Inspect(context.Background(), ref); !errors.Is(err, errNotFound) {
		t.Fatalf("a cancelled push left a tag: %v", err)
	}
	if _, err := New(Options{}).Push(context.Background(), PushRequest{Image: img, Ref: ref}); err != nil {
		t.Fatalf("the push after a cancelled one: %v", err)
	}
}
