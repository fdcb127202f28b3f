package iso

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/epoch", "internal/atomicfile")
}
