package upgrade

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// upgrade is a planner with no I/O: the standard library and the health
// model only (the controller, above it, observes and acts).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "deploy/health", "internal/fielderr")
	testutil.CheckExternalImports(t, nil, nil)
}
