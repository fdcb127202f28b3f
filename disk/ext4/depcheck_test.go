package ext4

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// ext4 is a leaf: it imports no kiln package (its tests use disk/image
// and disk/gpt, which the check does not count).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t)
}
