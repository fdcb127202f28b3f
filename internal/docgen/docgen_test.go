package docgen

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDocsUpToDate: the reference tables in the docs are exactly what the
// code accepts. Regenerate them with go run ./hack/gendocs.
func TestDocsUpToDate(t *testing.T) {
	Root = "../.."
	for file, update := range Files {
		b, err := os.ReadFile(filepath.Join("../..", file))
		if err != nil {
			t.Fatal(err)
		}
		want, err := update(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if want != string(b) {
			t.Errorf("%s is out of date: run `go run ./hack/gendocs`", file)
		}
	}
}
