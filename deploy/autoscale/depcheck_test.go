package autoscale

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// autoscale is a pure decision: the standard library only, no kiln package
// (not even deploy: the capacity limit is Validate's parameter).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/fielderr")
	testutil.CheckExternalImports(t, nil, nil)
}
