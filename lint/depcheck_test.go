package lint

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "disk", "disk/image", "disk/gpt", "disk/ext4", "internal/progress", "internal/lazyre")
}
