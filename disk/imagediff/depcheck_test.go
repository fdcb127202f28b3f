package imagediff

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// imagediff reads images through disk and its readers only (disk reports
// progress through internal/progress).
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "disk", "disk/ext4", "disk/gpt", "disk/image", "internal/progress")
}
