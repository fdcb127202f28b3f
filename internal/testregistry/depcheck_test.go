package testregistry

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps the harness small: of kiln it may use testutil (and
// what testutil uses) and aptsources, of the rest the standard library and
// x/crypto; its tests may add go-containerregistry.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/testutil", "internal/flock", "internal/aptsources")
	testutil.CheckExternalImports(t, []string{"golang.org/x/crypto/"}, []string{"github.com/google/go-containerregistry/"})
}
