package registry

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pass(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
		for _, pw := range []string{"", "correct horse"} {
			t.Run(alg+"/encrypted="+boolString(pw != ""), func(t *testing.T) {
				t.Parallel() // scrypt is slow under -race
				dir := t.TempDir()
				priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
				key, err := GenerateKey(alg)
				if err != nil {
					t.Fatal(err)
				}
				if err := WriteKeyPair(priv, pub, key, []byte(pw), false); err != nil {
					t.Fatal(err)
				}
				for p, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
					st, err := os.Stat(p)
					if err != nil {
						t.Fatal(err)
					}
					if st.Mode().Perm() != want {
						t.Errorf("%s: mode %04o, want %04o", p, st.Mode().Perm(), want)
					}
				}
				b, _ := os.ReadFile(priv)
				wantType := pemPrivateKey
				if pw != "" {
					wantType = "ENCRYPTED COSIGN PRIVATE KEY"
				}
				if block, _ := pem.Decode(b); block == nil || block.Type != wantType {
					t.Fatalf("private key file is not PEM %q:\n%s", wantType, b)
				}
				asked := false
				loaded, err := LoadPrivateKey(priv, func() ([]byte, error) { asked = true; return []byte(pw), nil })
				if err != nil {
					t.Fatal(err)
				}
				if asked != (pw != "") {
					t.Errorf("passphrase asked: %v, for an encrypted key: %v", asked, pw != "")
				}
				if !publicEqual(loaded.Public(), key.Public()) {
					t.Error("loaded private key differs")
				}
				lp, err := LoadPublicKey(pub)
				if err != nil {
					t.Fatal(err)
				}
				if !publicEqual(lp, key.Public()) {
					t.Error("loaded public key differs")
				}
				if got, _ := KeyType(loaded); got != alg {
					t.Errorf("KeyType = %q, want %q", got, alg)
				}
			})
		}
	}
}

func boolString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func publicEqual(a, b crypto.PublicKey) bool {
	return a.(interface{ Equal(crypto.PublicKey) bool }).Equal(b)
}

// The encrypted body is the sigstore format field for field: scrypt with
// cosign's cost, a 32-byte salt, nacl/secretbox with a 24-byte nonce.
func TestEncryptedKeyFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv := filepath.Join(dir, "k.key")
	key, _ := GenerateKey(KeyECDSAP256)
	if err := WriteKeyPair(priv, filepath.Join(dir, "k.pub"), key, []byte("pw"), false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(priv)
	block, _ := pem.Decode(b)
	var body map[string]any
	if err := json.Unmarshal(block.Bytes, &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	kdf := body["kdf"].(map[string]any)
	params := kdf["params"].(map[string]any)
	cipher := body["cipher"].(map[string]any)
	if kdf["name"] != "scrypt" || params["N"] != 32768.0 || params["r"] != 8.0 || params["p"] != 1.0 || cipher["name"] != "nacl/secretbox" {
		t.Fatalf("unexpected header: %s", block.Bytes)
	}
	var e encryptedKey
	json.Unmarshal(block.Bytes, &e)
	if len(e.KDF.Salt) != 32 || len(e.Cipher.Nonce) != 24 || len(e.Ciphertext) == 0 {
		t.Fatalf("salt %d, nonce %d, ciphertext %d bytes", len(e.KDF.Salt), len(e.Cipher.Nonce), len(e.Ciphertext))
	}

	// cosign 2 writes the same body as ENCRYPTED SIGSTORE PRIVATE KEY.
	v2 := filepath.Join(dir, "cosign2.key")
	os.WriteFile(v2, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: block.Bytes}), 0o600)
	k, err := LoadPrivateKey(v2, pass("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !publicEqual(k.Public(), key.Public()) {
		t.Error("SIGSTORE-named key differs")
	}
}

func TestWrongPassphrase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv := filepath.Join(dir, "k.key")
	key, _ := GenerateKey(KeyEd25519)
	WriteKeyPair(priv, filepath.Join(dir, "k.pub"), key, []byte("right"), false)
	_, err := LoadPrivateKey(priv, pass("wrong"))
	if !errors.Is(err, errWrongPassphrase) || !strings.Contains(err.Error(), priv) {
		t.Fatalf("err = %v, want a wrong passphrase error naming %s", err, priv)
	}
	if _, err := LoadPrivateKey(priv, nil); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no passphrase function: err = %v", err)
	}
}

func TestWriteKeyPairRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	os.WriteFile(pub, []byte("keep"), 0o644)
	key, _ := GenerateKey("")
	err := WriteKeyPair(priv, pub, key, nil, false)
	var ke *KeyExistsError
	if !errors.As(err, &ke) || ke.Path != pub || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want KeyExistsError for %s", err, pub)
	}
	if _, err := os.Stat(priv); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the private key was written although the pair was refused")
	}
	if err := WriteKeyPair(priv, pub, key, nil, true); err != nil {
		t.Fatalf("force: %v", err)
	}
	if _, err := LoadPublicKey(pub); err != nil {
		t.Fatalf("forced public key: %v", err)
	}
	// Forcing over a too-open file leaves it 0600.
	os.Chmod(priv, 0o644)
	if err := WriteKeyPair(priv, pub, key, nil, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(priv); st.Mode().Perm() != 0o600 {
		t.Errorf("overwritten private key mode %04o", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestLoadPrivateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, perm); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, perm)
		return p
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	good, _ := GenerateKey("")
	goodDER, _ := x509.MarshalPKCS8PrivateKey(good)
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: goodDER})
	hostile := `{"kdf":{"name":"scrypt","params":{"N":1073741824,"r":8,"p":1},"salt":"AAAA"},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":"AAAA"}`

	for _, c := range []struct {
		name, path, want string
	}{
		{"rsa pkcs8", write("rsa.key", pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: rsaPKCS8}), 0o600), "RSA key"},
		{"rsa pkcs1", write("rsa1.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), 0o600), "RSA key"},
		{"p384", write("p384.key", pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: p384DER}), 0o600), "P-384"},
		{"group readable", write("group.key", goodPEM, 0o640), "too open"},
		{"world readable", write("world.key", goodPEM, 0o604), "too open"},
		{"not pem", write("junk.key", []byte("ssh-ed25519 AAAA..."), 0o600), "not a PEM"},
		{"public key", write("pub.key", pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: []byte{1}}), 0o600), "not a private key"},
		{"hostile scrypt cost", write("cost.key", pem.EncodeToMemory(&pem.Block{Type: pemEncryptedSigstore, Bytes: []byte(hostile)}), 0o600), "out of range"},
		{"missing", filepath.Join(dir, "none.key"), "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadPrivateKey(c.path, pass("pw"))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), c.path+": ") {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, c.path, c.want)
			}
		})
	}

	// The public half of an RSA key is refused as well.
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	p := write("rsa.pub", pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), 0o644)
	if _, err := LoadPublicKey(p); err == nil || !strings.Contains(err.Error(), "RSA") {
		t.Fatalf("RSA public key: err = %v", err)
	}
}

func TestGenerateKeyUnknownType(t *testing.T) {
	if _, err := GenerateKey("rsa-4096"); err == nil || !strings.Contains(err.Error(), "ecdsa-p256") {
		t.Fatalf("err = %v", err)
	}
}
