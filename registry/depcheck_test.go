package registry

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// The registry sits below builder, deploy and the Packer plugin: it reads
// disks (disk/image), manifests and internal helpers only.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "disk/image", "manifest", "internal/atomicfile", "internal/ctxio", "internal/digest", "internal/flock",
		"internal/progress", "internal/version")
}
