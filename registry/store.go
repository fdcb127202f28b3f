package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// store is where images live: a repository of a registry, or an OCI image
// layout directory. Push, pull, signatures and referrers are written once
// against it.
type store interface {
	// String names the store in messages (registry/repo, or oci:DIR).
	String() string
	// resolve returns the descriptor of a tag or digest ("sha256:…");
	// errNotFound when there is none.
	resolve(ctx context.Context, id string) (v1.Descriptor, error)
	// manifest returns a manifest's bytes by digest, verified, at most
	// maxManifestSize.
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	// blob opens a blob from offset on. The caller verifies the digest.
	blob(ctx context.Context, d v1.Hash, offset int64) (io.ReadCloser, error)
	// hasBlob reports whether the store holds the blob already.
	hasBlob(ctx context.Context, d v1.Hash) (bool, error)
	// putImage and putIndex write a manifest with all its blobs; tag may
	// be empty (by digest only).
	putImage(ctx context.Context, img v1.Image, tag string) error
	putIndex(ctx context.Context, idx v1.ImageIndex, tag string) error
	// referrers lists the manifests whose subject is d (the referrers API,
	// or the sha256-<hex> tag fallback).
	referrers(ctx context.Context, d v1.Hash) ([]v1.Descriptor, error)
}

// Bounds on what kiln reads from a store before trusting it.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 4 << 20
	// maxSmallBlob bounds referrer payloads: kiln manifests, SBOMs, signatures.
	maxSmallBlob = 64 << 20
)

// errNotFound is a tag or digest the store does not have.
var errNotFound = errors.New("not found")

// NotFoundError is a reference the store does not have.
type NotFoundError struct {
	Ref  string
	What string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s: %s not found", e.Ref, e.What) }

// Is lets errors.Is(err, errNotFound) match.
func (e *NotFoundError) Is(target error) bool { return target == errNotFound }

// readSmall reads a whole blob of known size, verified against its digest.
func readSmall(ctx context.Context, s store, d v1.Descriptor, limit int64) ([]byte, error) {
	if d.Size < 0 || d.Size > limit {
		return nil, fmt.Errorf("%s: blob %s is %d bytes, more than the %d kiln accepts here", s, d.Digest, d.Size, limit)
	}
	rc, err := s.blob(ctx, d.Digest, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading blob %s: %w", s, d.Digest, err)
	}
	if err := verifyBytes(b, d); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	return b, nil
}

// verifyBytes checks size and digest of content against its descriptor.
func verifyBytes(b []byte, d v1.Descriptor) error {
	if int64(len(b)) != d.Size {
		return fmt.Errorf("blob %s: got %d bytes, the descriptor says %d", d.Digest, len(b), d.Size)
	}
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if h != d.Digest {
		return &DigestError{Want: d.Digest, Got: h}
	}
	return nil
}

// DigestError is content whose digest is not the one it was named by.
type DigestError struct{ Want, Got v1.Hash }

func (e *DigestError) Error() string {
	return fmt.Sprintf("content does not match its digest: want %s, got %s (corrupt or tampered; nothing was kept)", e.Want, e.Got)
}
