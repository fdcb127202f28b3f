// Package digest computes the SHA-256 digests kiln records for files
// (manifests, caches, downloads): kiln's one file-digest helper.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Prefix is how digests are written in manifests: "sha256:<hex>".
const Prefix = "sha256:"

// Sum is a file's size and SHA-256.
type Sum struct {
	Size int64
	Hex  string // lower-case hex, no prefix
}

// String is the digest as manifests record it, "sha256:<hex>".
func (s Sum) String() string { return Prefix + s.Hex }

// File reads the file at path once and returns its size and SHA-256.
func File(path string) (Sum, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sum{}, err
	}
	defer f.Close()
	return Reader(f)
}

// Reader digests everything r yields.
func Reader(r io.Reader) (Sum, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Sum{}, err
	}
	return Sum{Size: n, Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// Bytes digests b.
func Bytes(b []byte) Sum {
	s := sha256.Sum256(b)
	return Sum{Size: int64(len(b)), Hex: hex.EncodeToString(s[:])}
}

// ParseHex accepts "sha256:<hex>" or bare hex and returns the hex, lower
// case; anything but 64 hex digits is an error.
func ParseHex(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(s, Prefix))
	if len(h) != 64 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", s)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", s)
	}
	return h, nil
}
