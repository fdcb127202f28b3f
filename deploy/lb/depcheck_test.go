package lb

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// lb drives a real HAProxy: the standard library and kiln's internal
// helpers only (atomic writes, locks, progress), nothing of deploy.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/atomicfile", "internal/flock", "internal/progress")
	testutil.CheckExternalImports(t, nil, nil)
}
