package builder

import "github.com/kiln-project/kiln/internal/aptsources"

// Mirrors are the Debian archives a package base is built from (see
// internal/aptsources).
type Mirrors = aptsources.Mirrors

// HostMirrors reads the build host's apt sources.
func HostMirrors(etcApt string) (Mirrors, error) { return aptsources.HostMirrors(etcApt) }
