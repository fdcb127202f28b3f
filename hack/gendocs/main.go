// Command gendocs regenerates the reference tables of the docs from the code
// (see internal/docgen), so they cannot drift; a test fails when they are out
// of date. Run it from the repository root: go run ./hack/gendocs
package main

import (
	"fmt"
	"os"

	"github.com/kiln-project/kiln/internal/docgen"
)

func main() {
	for path, update := range docgen.Files {
		b, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		out, err := update(string(b))
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gendocs:", err)
	os.Exit(1)
}
