package seed

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// The seed package makes seeds without the bake pipeline.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "recipes", "cloudinit", "iso", "internal/atomicfile", "internal/digest", "internal/epoch", "internal/lazyre")
}
