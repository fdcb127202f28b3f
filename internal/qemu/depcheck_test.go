package qemu

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps internal/qemu a leaf: it may import no kiln package.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t)
}
