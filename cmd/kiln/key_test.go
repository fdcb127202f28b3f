package main

import (
	"bytes"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/registry"
)

// runKey runs kiln in process with the key command, registered in root.go
// or not yet.
func runKey(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	r := runInProcess(t, args...)
	return r.stdout, r.stderr, r.code
}

func TestKeyGenerate(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	t.Setenv(passphraseEnv, "")
	out, stderr, code := runKey(t, "key", "generate", "--type", "ed25519", "-o", prefix)
	if code != 0 || !strings.Contains(out, "release.key (ed25519 private key, 0600, not encrypted)") || !strings.Contains(stderr, "not encrypted") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", st.Mode(), err)
	}
	k, err := registry.LoadPrivateKey(prefix+".key", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := registry.LoadPublicKey(prefix + ".pub")
	if err != nil || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Fatalf("public key %v", err)
	}

	// A second run does not overwrite the pair.
	before, _ := os.ReadFile(prefix + ".key")
	_, stderr, code = runKey(t, "key", "generate", "-o", prefix)
	if after, _ := os.ReadFile(prefix + ".key"); code != exitInvalid || !bytes.Equal(before, after) || !strings.Contains(stderr, "--force") {
		t.Fatalf("second run: exit %d, key changed %v\n%s", code, !bytes.Equal(before, after), stderr)
	}
	if _, _, code = runKey(t, "key", "generate", "-o", prefix, "--force"); code != 0 {
		t.Fatalf("--force: exit %d", code)
	}
	if after, _ := os.ReadFile(prefix + ".key"); bytes.Equal(before, after) {
		t.Fatal("--force did not replace the key")
	}
}

func TestKeyGenerateEncrypted(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(passphraseEnv, "from env")
	out, _, code := runKey(t, "key", "generate", "-o", filepath.Join(dir, "env"), "--output", "json")
	var env struct {
		OK   bool
		Data struct {
			PrivateKey, PublicKey, Type string
			Encrypted                   bool
		}
	}
	if err := json.Unmarshal([]byte(out), &env); err != nil || code != 0 || !env.OK || !env.Data.Encrypted || env.Data.Type != "ecdsa-p256" {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := registry.LoadPrivateKey(env.Data.PrivateKey, func() ([]byte, error) { return []byte("from env"), nil }); err != nil {
		t.Fatal(err)
	}

	// The file wins over the environment; its first line is the passphrase.
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("from file\nignored\n"), 0o600)
	if _, stderr, code := runKey(t, "key", "generate", "-o", filepath.Join(dir, "file"), "--passphrase-file", pf); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := registry.LoadPrivateKey(filepath.Join(dir, "file.key"), func() ([]byte, error) { return []byte("from file"), nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, code := runKey(t, "key", "generate", "-o", filepath.Join(dir, "x"), "--passphrase-file", filepath.Join(dir, "missing")); code != exitInvalid {
		t.Fatalf("missing passphrase file: exit %d", code)
	}
	if _, _, code := runKey(t, "key", "generate", "-o", filepath.Join(dir, "x"), "--type", "rsa"); code != exitInvalid {
		t.Fatalf("unknown type: exit %d", code)
	}
}
