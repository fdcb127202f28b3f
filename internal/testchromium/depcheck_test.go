package testchromium

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps the harness small: of kiln it may use testutil (and
// what testutil uses), of the rest the standard library only (it speaks
// the DevTools protocol itself).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/testutil", "internal/flock")
	testutil.CheckExternalImports(t, nil, nil)
}
