package aptsources

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// A leaf: reading apt sources needs nothing of kiln.
func TestDepcheck(t *testing.T) { testutil.CheckImports(t) }
