package fetch

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/progress", "internal/flock", "internal/digest", "internal/lazyre", "internal/ctxio")
}
