package boot

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// boot lies below the bake pipeline and kiln test, and knows no recipes.
func TestDepcheck(t *testing.T) {
	// guestssh writes the deploy controller's kept key whole (atomicfile).
	testutil.CheckImports(t, "internal/qemu", "internal/guestssh", "internal/atomicfile")
}
