package manifest

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// The manifest is a contract: a registry, a fleet or the Packer plugin
// read it without the bake pipeline or the recipe model.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/atomicfile", "internal/digest")
}
