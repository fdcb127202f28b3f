package guestssh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// A kept key is made once, private to its owner, and read back the same;
// a damaged one is an error that says what to do.
func TestLoadOrMakeKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	k1, err := LoadOrMakeKey(path, "kiln-lb")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st.Mode(), err)
	}
	k2, err := LoadOrMakeKey(path, "kiln-lb")
	if err != nil {
		t.Fatal(err)
	}
	if k1.AuthorizedKey != k2.AuthorizedKey || !strings.HasPrefix(k1.AuthorizedKey, "ssh-ed25519 ") || !strings.HasSuffix(k1.AuthorizedKey, " kiln-lb") {
		t.Errorf("read back %q, made %q", k2.AuthorizedKey, k1.AuthorizedKey)
	}
	// The kept key logs in where its public half is authorized.
	addr := fakeServer(t, k1.AuthorizedKey)
	c, err := Dial(t.Context(), addr, "kiln-lb", k2, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := LoadOrMakeKey(path, "kiln-lb"); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("a damaged key: %v", err)
	}
}

func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/atomicfile")
	testutil.CheckExternalImports(t, []string{"golang.org/x/crypto"}, nil)
}
