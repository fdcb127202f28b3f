package image

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// image is a leaf: no kiln package but its own zstd decoder (in particular
// not disk/gpt or disk/ext4, which sit on top of it).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t)
}
