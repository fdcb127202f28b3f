package registry

import (
	"context"
	"crypto"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// signDigest is replaced by the signing code.
func (c *Client) signDigest(ctx context.Context, s store, ref Ref, d v1.Hash, key crypto.Signer) (string, error) {
	return "", errors.New("signing is not built yet")
}

// verifyDigest is replaced by the signing code.
func (c *Client) verifyDigest(ctx context.Context, s store, ref Ref, d v1.Hash, pub crypto.PublicKey) error {
	return errors.New("verification is not built yet")
}
