package registry

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// Signing key types.
const (
	KeyECDSAP256 = "ecdsa-p256" // the default, and cosign's
	KeyEd25519   = "ed25519"
)

// PEM block types of key files. An encrypted private key is one body (the
// sigstore format) under two names: cosign 2 writes SIGSTORE, cosign 1 wrote
// COSIGN. kiln writes COSIGN, the one name every reader takes: cosign 1
// and 2, and containers/image, which reads SIGSTORE only since v5.25
// (v5.23.1, the one in skopeo 1.9.3, refuses it: "unsupported pem type").
const (
	pemPublicKey          = "PUBLIC KEY"
	pemPrivateKey         = "PRIVATE KEY"
	pemECPrivateKey       = "EC PRIVATE KEY"
	pemEncryptedSigstore  = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign    = "ENCRYPTED COSIGN PRIVATE KEY"
	pemEncryptedWritten   = pemEncryptedCosign
	maxKeyFileSize        = 64 << 10
	encryptedKeySaltBytes = 32
)

// The scrypt cost kiln writes (cosign's and securesystemslib's defaults),
// and the most it will spend reading someone else's file: N=2^20, r=8 is
// 1 GiB of memory already.
const (
	scryptN, scryptR, scryptP = 32768, 8, 1
	maxScryptN                = 1 << 20
	maxScryptRP               = 64
)

// GenerateKey makes a new signing key: KeyECDSAP256 ("" too) or KeyEd25519.
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", KeyECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return k, nil
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, fmt.Errorf("key type %q: want %s or %s", alg, KeyECDSAP256, KeyEd25519)
}

// KeyType names the type of a supported key ("ecdsa-p256", "ed25519"),
// public or private.
func KeyType(k any) (string, error) {
	if s, ok := k.(crypto.Signer); ok {
		k = s.Public()
	}
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on curve %s: kiln signs and verifies with P-256 (or ed25519)", k.Curve.Params().Name)
		}
		return KeyECDSAP256, nil
	case ed25519.PublicKey:
		return KeyEd25519, nil
	case *rsa.PublicKey:
		return "", errors.New("RSA key: kiln signs and verifies with ECDSA P-256 or ed25519 keys (kiln key generate makes one)")
	}
	return "", fmt.Errorf("unsupported key type %T: want ECDSA P-256 or ed25519", k)
}

// KeyExistsError is a key file that is there already.
type KeyExistsError struct{ Path string }

func (e *KeyExistsError) Error() string {
	return fmt.Sprintf("%s exists; kiln does not overwrite keys (remove it, choose another name, or force)", e.Path)
}

func (e *KeyExistsError) Is(target error) bool { return target == fs.ErrExist }

// WriteKeyPair writes key's private half to privPath (mode 0600) and its
// public half to pubPath (PEM "PUBLIC KEY", PKIX, mode 0644). An empty
// passphrase writes PKCS#8 PEM "PRIVATE KEY"; otherwise the sigstore
// encrypted format (scrypt and nacl/secretbox) as "ENCRYPTED COSIGN
// PRIVATE KEY", which cosign and containers/image (skopeo, podman) read. Each file appears whole or not at all, and the private key is
// never readable by others, not even while it is written. Existing files
// are an error (*KeyExistsError) unless force is set.
func WriteKeyPair(privPath, pubPath string, key crypto.Signer, passphrase []byte, force bool) error {
	if _, err := KeyType(key); err != nil {
		return err
	}
	priv, err := marshalPrivateKey(key, passphrase)
	if err != nil {
		return err
	}
	pub, err := marshalPublicKey(key.Public())
	if err != nil {
		return err
	}
	if !force {
		// Both checked first, so a refusal leaves neither file written.
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return &KeyExistsError{Path: p}
			}
		}
	}
	write := atomicfile.Write
	if !force {
		write = atomicfile.Create
	}
	if err := write(privPath, priv, 0o600); err != nil {
		return existsError(privPath, err)
	}
	if err := write(pubPath, pub, 0o644); err != nil {
		if !force {
			// A private key without its public half is only confusing.
			os.Remove(privPath)
		}
		return existsError(pubPath, err)
	}
	return nil
}

func existsError(path string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return &KeyExistsError{Path: path}
	}
	return err
}

func marshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

func marshalPrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
	}
	body, err := encryptKey(der, passphrase)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedWritten, Bytes: body}), nil
}

// encryptedKey is the JSON body of an encrypted sigstore private key:
// secretbox.Seal of the PKCS#8 DER under scrypt(passphrase, salt, N, r, p)
// as the 32-byte key. []byte fields are standard base64 in JSON.
type encryptedKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

const (
	kdfScrypt        = "scrypt"
	cipherSecretbox  = "nacl/secretbox"
	secretboxKeySize = 32
	secretboxNonce   = 24
)

func encryptKey(plain, passphrase []byte) ([]byte, error) {
	var e encryptedKey
	e.KDF.Name = kdfScrypt
	e.KDF.Params.N, e.KDF.Params.R, e.KDF.Params.P = scryptN, scryptR, scryptP
	e.KDF.Salt = make([]byte, encryptedKeySaltBytes)
	e.Cipher.Name = cipherSecretbox
	e.Cipher.Nonce = make([]byte, secretboxNonce)
	if _, err := io.ReadFull(rand.Reader, e.KDF.Salt); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand.Reader, e.Cipher.Nonce); err != nil {
		return nil, err
	}
	k, err := scrypt.Key(passphrase, e.KDF.Salt, scryptN, scryptR, scryptP, secretboxKeySize)
	if err != nil {
		return nil, err
	}
	var key [secretboxKeySize]byte
	var nonce [secretboxNonce]byte
	copy(key[:], k)
	copy(nonce[:], e.Cipher.Nonce)
	e.Ciphertext = secretbox.Seal(nil, plain, &nonce, &key)
	return json.Marshal(e)
}

// errWrongPassphrase is a secretbox that does not open: the passphrase is
// wrong, or the file was changed.
var errWrongPassphrase = errors.New("wrong passphrase (or a damaged key file)")

func decryptKey(body, passphrase []byte) ([]byte, error) {
	var e encryptedKey
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	p := e.KDF.Params
	switch {
	case e.KDF.Name != kdfScrypt:
		return nil, fmt.Errorf("encrypted key: key derivation %q, want %s", e.KDF.Name, kdfScrypt)
	case e.Cipher.Name != cipherSecretbox:
		return nil, fmt.Errorf("encrypted key: cipher %q, want %s", e.Cipher.Name, cipherSecretbox)
	case p.N <= 1 || p.N > maxScryptN || p.N&(p.N-1) != 0 || p.R <= 0 || p.P <= 0 || p.R*p.P > maxScryptRP:
		// Bounded: a hostile file must not make kiln spend gigabytes.
		return nil, fmt.Errorf("encrypted key: scrypt parameters N=%d r=%d p=%d out of range (N a power of two up to %d, r*p up to %d)", p.N, p.R, p.P, maxScryptN, maxScryptRP)
	case len(e.KDF.Salt) == 0:
		return nil, errors.New("encrypted key: no salt")
	case len(e.Cipher.Nonce) != secretboxNonce:
		return nil, fmt.Errorf("encrypted key: nonce of %d bytes, want %d", len(e.Cipher.Nonce), secretboxNonce)
	}
	k, err := scrypt.Key(passphrase, e.KDF.Salt, p.N, p.R, p.P, secretboxKeySize)
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	var key [secretboxKeySize]byte
	var nonce [secretboxNonce]byte
	copy(key[:], k)
	copy(nonce[:], e.Cipher.Nonce)
	plain, ok := secretbox.Open(nil, e.Ciphertext, &nonce, &key)
	if !ok {
		return nil, errWrongPassphrase
	}
	return plain, nil
}

// KeyError is a key file kiln cannot use; Path names it.
type KeyError struct {
	Path string
	Err  error
}

func (e *KeyError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// LoadPrivateKey reads a private key written by WriteKeyPair, cosign or
// openssl: PEM "PRIVATE KEY" (PKCS#8), "EC PRIVATE KEY", or the encrypted
// "ENCRYPTED SIGSTORE PRIVATE KEY" / "ENCRYPTED COSIGN PRIVATE KEY", for
// which it calls passphrase (only then). Like ssh, it refuses a file that
// group or others may read or write.
func LoadPrivateKey(path string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	k, err := loadPrivateKey(path, passphrase)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	return k, nil
}

func loadPrivateKey(path string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM key file (want a -----BEGIN ... PRIVATE KEY----- block, as kiln key generate writes)")
	}
	var der []byte
	switch block.Type {
	case pemPrivateKey:
		der = block.Bytes
	case pemEncryptedSigstore, pemEncryptedCosign:
		if passphrase == nil {
			return nil, errors.New("the key is encrypted and no passphrase was given")
		}
		pw, err := passphrase()
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		if der, err = decryptKey(block.Bytes, pw); err != nil {
			return nil, err
		}
	case pemECPrivateKey:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("EC private key: %w", err)
		}
		if _, err := KeyType(k); err != nil {
			return nil, err
		}
		return k, nil
	case "RSA PRIVATE KEY":
		return nil, errors.New("RSA key: kiln signs with ECDSA P-256 or ed25519 keys (kiln key generate makes one)")
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key kiln reads (want PRIVATE KEY, or ENCRYPTED COSIGN or SIGSTORE PRIVATE KEY)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("PKCS#8 private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if _, err := KeyType(signer); err != nil {
		return nil, err
	}
	return signer, nil
}

// LoadPublicKey reads a PEM "PUBLIC KEY" (PKIX) file, ECDSA P-256 or
// ed25519, as kiln key generate and cosign write.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := readKeyFile(path, false)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	k, err := parsePublicKey(b)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	return k, nil
}

func parsePublicKey(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM key file (want a -----BEGIN PUBLIC KEY----- block, as kiln key generate writes)")
	}
	if block.Type != pemPublicKey {
		return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY)", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if _, err := KeyType(k); err != nil {
		return nil, err
	}
	return k, nil
}

// readKeyFile reads a small key file; a private one must be the owner's
// alone (checked on the open file, so a swap cannot slip past).
func readKeyFile(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if perm := st.Mode().Perm(); private && perm&0o077 != 0 {
		return nil, fmt.Errorf("private key permissions %04o are too open: group or others may read it; run chmod 600 %s (kiln refuses such keys, as ssh does)", perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("more than %d bytes: not a key file", maxKeyFileSize)
	}
	return b, nil
}

// unwrapPath drops the path from an *fs.PathError: KeyError names it.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
