package fielderr

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// fielderr is a leaf: the standard library only.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t)
	testutil.CheckExternalImports(t, nil, nil)
}
