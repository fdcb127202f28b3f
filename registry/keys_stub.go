package registry

import (
	"crypto"
	"errors"
)

// LoadPrivateKey is replaced by the signing code.
func LoadPrivateKey(path string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	return nil, errors.New("keys are not built yet")
}

// LoadPublicKey is replaced by the signing code.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	return nil, errors.New("keys are not built yet")
}
