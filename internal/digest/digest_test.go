package digest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("abc"), 0o644)
	s, err := File(p)
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if err != nil || s.Size != 3 || s.Hex != abc || s.String() != "sha256:"+abc || Bytes([]byte("abc")) != s {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := File(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file digested")
	}
}

func TestParseHex(t *testing.T) {
	const h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for in, ok := range map[string]bool{h: true, "sha256:" + h: true, "SHA256:" + h: false, h[:63]: false, h[:63] + "g": false, "": false} {
		got, err := ParseHex(in)
		if ok != (err == nil) || (ok && got != h) {
			t.Errorf("ParseHex(%q) = %q, %v", in, got, err)
		}
	}
}
