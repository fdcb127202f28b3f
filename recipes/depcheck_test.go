package recipes

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "cloudinit", "internal/lazyre")
}
