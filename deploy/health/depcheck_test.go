package health

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// health is a model with no I/O: the standard library only, no kiln
// package (the controller, above it, does the probing).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/fielderr")
	testutil.CheckExternalImports(t, nil, nil)
}
