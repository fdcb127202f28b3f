package imagetest

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// kiln test sits beside the bake pipeline, not on it.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "boot", "seed", "manifest", "recipes", "cloudinit", "iso", "disk", "disk/image", "disk/gpt", "disk/ext4",
		"internal/qemu", "internal/guestssh", "internal/probe", "internal/progress", "internal/atomicfile", "internal/digest", "internal/epoch", "internal/lazyre")
}
