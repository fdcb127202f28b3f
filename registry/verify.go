package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifier hashes what is written through it and checks size and digest.
type verifier struct {
	want v1.Hash
	size int64
	h    hash.Hash
	n    int64
}

func newVerifier(want v1.Hash, size int64) *verifier {
	return &verifier{want: want, size: size, h: sha256.New()}
}

func (v *verifier) Write(p []byte) (int, error) {
	v.n += int64(len(p))
	if v.size >= 0 && v.n > v.size {
		return 0, fmt.Errorf("blob %s: more than its %d bytes", v.want, v.size)
	}
	return v.h.Write(p)
}

func (v *verifier) check() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("blob %s: got %d bytes, want %d", v.want, v.n, v.size)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(v.h.Sum(nil))}
	if got != v.want {
		return &DigestError{Want: v.want, Got: got}
	}
	return nil
}

func (v *verifier) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(v.h.Sum(nil))}
}
