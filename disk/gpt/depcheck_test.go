package gpt

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// gpt is a leaf: it imports no kiln package.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t)
}
