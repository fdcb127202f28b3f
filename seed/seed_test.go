package seed

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
)

func testSeed(secret bool) *recipes.Seed {
	return &recipes.Seed{InstanceID: "i-1", Hostname: "web-1", HoldsSecrets: secret,
		UserData: []byte("#cloud-config\nhostname: web-1\n"), MetaData: []byte("instance-id: i-1\n")}
}

// TestWrite: both formats read back with their label and files; the
// result's digest is the file's; secrets make the file private.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		format Format
		label  string
		secret bool
		perm   os.FileMode
	}{{ISO, "cidata", false, 0o644}, {VFAT, "CIDATA", true, 0o600}} {
		p := filepath.Join(dir, string(c.format)+".img")
		res, err := Write(p, testSeed(c.secret), Options{Format: c.format, ModTime: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if res.SHA256 != digest.Bytes(b).String() || res.Size != int64(len(b)) || st.Mode().Perm() != c.perm || res.Format != string(c.format) {
			t.Errorf("%s: %+v, mode %v", c.format, res, st.Mode().Perm())
		}
		label, entries, err := iso.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil || label != c.label || len(entries) != 2 || entries[1].Name != "user-data" {
			t.Errorf("%s: read back %q %v %v", c.format, label, entries, err)
		}
	}
	if _, err := Write(filepath.Join(dir, "x"), testSeed(false), Options{Format: "udf"}); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestWriteDir(t *testing.T) {
	s := testSeed(true)
	s.NetworkConfig = []byte("version: 2\n")
	files, err := WriteDir(t.TempDir(), s)
	if err != nil || len(files) != 3 {
		t.Fatalf("%v %v", files, err)
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v", f, st.Mode().Perm())
		}
	}
}
