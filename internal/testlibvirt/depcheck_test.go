package testlibvirt

import (
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps the harness small: of kiln it may use testutil (and
// what testutil uses), of the rest the standard library and go-libvirt
// (with the x/crypto its SSH dialer needs); its tests may add libvirtxml.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/testutil", "internal/flock")
	testutil.CheckExternalImports(t, []string{"github.com/digitalocean/go-libvirt", "golang.org/x/crypto/"}, []string{"libvirt.org/go/libvirtxml"})
}
