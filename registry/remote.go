package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// remoteStore is a repository in a registry, spoken to through
// go-containerregistry.
type remoteStore struct {
	repo name.Repository
	c    *Client
	// mounts, when set, names other repositories of the same registry
	// that hold a blob, so uploads mount it instead of sending it.
	mounts func(v1.Hash) []string
}

func (s *remoteStore) String() string { return s.repo.Name() }

func (s *remoteStore) options(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.c.keychain),
		remote.WithTransport(s.c.transport),
		remote.WithRetryBackoff(s.c.backoff),
		remote.WithUserAgent(s.c.userAgent),
	}, extra...)
}

func (s *remoteStore) ref(id string) (name.Reference, error) {
	if strings.HasPrefix(id, "sha256:") {
		return s.repo.Digest(id), nil
	}
	return s.repo.Tag(id), nil
}

func (s *remoteStore) resolve(ctx context.Context, id string) (v1.Descriptor, error) {
	ref, err := s.ref(id)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := remote.Head(ref, s.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return v1.Descriptor{}, &NotFoundError{Ref: ref.Name(), What: "manifest"}
		}
		// The reference as asked for, tag included: "registry down" and
		// "not authorized" should say which image was wanted.
		return v1.Descriptor{}, s.wrapAs(ref.Name(), err)
	}
	return *d, nil
}

func (s *remoteStore) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Size > maxManifestSize {
		return nil, fmt.Errorf("%s@%s: manifest of %d bytes, more than the %d kiln accepts", s, d.Digest, d.Size, maxManifestSize)
	}
	desc, err := remote.Get(s.repo.Digest(d.Digest.String()), s.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, &NotFoundError{Ref: s.repo.Digest(d.Digest.String()).Name(), What: "manifest"}
		}
		return nil, s.wrap(err)
	}
	// go-containerregistry checks the digest of what it got by digest.
	return desc.Manifest, nil
}

func (s *remoteStore) blob(ctx context.Context, d v1.Hash, offset int64) (io.ReadCloser, error) {
	rt, err := s.transport(ctx, transport.PullScope)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", s.repo.Registry.Scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, s.wrap(err)
	}
	want := http.StatusOK
	if offset > 0 {
		want = http.StatusPartialContent
	}
	if resp.StatusCode == http.StatusOK && offset > 0 {
		// The registry ignored the range: the body starts at zero.
		resp.Body.Close()
		return nil, errNoRange
	}
	if err := transport.CheckError(resp, want); err != nil {
		resp.Body.Close()
		if isNotFound(err) {
			return nil, &NotFoundError{Ref: s.repo.Digest(d.String()).Name(), What: "blob"}
		}
		return nil, s.wrap(err)
	}
	return resp.Body, nil
}

// errNoRange is a registry that answered a range request with the whole blob.
var errNoRange = errors.New("registry ignored the range request")

func (s *remoteStore) transport(ctx context.Context, scope string) (http.RoundTripper, error) {
	auth, err := s.c.keychain.Resolve(s.repo)
	if err != nil {
		return nil, fmt.Errorf("%s: credentials: %w", s, err)
	}
	rt, err := transport.NewWithContext(ctx, s.repo.Registry, auth, s.c.transport, []string{s.repo.Scope(scope)})
	if err != nil {
		return nil, s.wrap(err)
	}
	return rt, nil
}

func (s *remoteStore) hasBlob(ctx context.Context, d v1.Hash) (bool, error) {
	l, err := remote.Layer(s.repo.Digest(d.String()), s.options(ctx)...)
	if err != nil {
		return false, s.wrap(err)
	}
	if _, err := l.Size(); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, s.wrap(err)
	}
	return true, nil
}

func (s *remoteStore) putImage(ctx context.Context, img v1.Image, tag string) error {
	if s.mounts != nil {
		img = &mountingImage{Image: img, repo: s.repo, mounts: s.mounts}
	}
	ref, err := s.target(img, tag)
	if err != nil {
		return err
	}
	return s.wrap(remote.Write(ref, img, s.options(ctx)...))
}

func (s *remoteStore) putIndex(ctx context.Context, idx v1.ImageIndex, tag string) error {
	if s.mounts != nil {
		idx = &mountingIndex{index: idx, repo: s.repo, mounts: s.mounts}
	}
	ref, err := s.target(idx, tag)
	if err != nil {
		return err
	}
	return s.wrap(remote.WriteIndex(ref, idx, s.options(ctx)...))
}

func (s *remoteStore) target(t interface{ Digest() (v1.Hash, error) }, tag string) (name.Reference, error) {
	if tag != "" {
		return s.repo.Tag(tag), nil
	}
	h, err := t.Digest()
	if err != nil {
		return nil, err
	}
	return s.repo.Digest(h.String()), nil
}

func (s *remoteStore) referrers(ctx context.Context, d v1.Hash) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(s.repo.Digest(d.String()), s.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, s.wrap(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, s.wrap(err)
	}
	return im.Manifests, nil
}

// wrap names the repository in an error and keeps its cause.
func (s *remoteStore) wrap(err error) error { return s.wrapAs(s.String(), err) }

// wrapAs is wrap naming what (a reference in the repository) instead.
func (s *remoteStore) wrapAs(what string, err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: not authorized (check `kiln login %s`, or the docker/podman credentials for it): %w", what, s.repo.RegistryStr(), err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return true
			}
		}
	}
	return false
}

// mountingImage makes an image's layers mountable from another repository
// of the same registry that already holds them (a cross-repository mount
// instead of an upload).
type mountingImage struct {
	v1.Image
	repo   name.Repository
	mounts func(v1.Hash) []string
}

func (m *mountingImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = mountable(l, m.repo, m.mounts)
	}
	return out, nil
}

func (m *mountingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return mountable(l, m.repo, m.mounts), nil
}

func mountable(l v1.Layer, repo name.Repository, mounts func(v1.Hash) []string) v1.Layer {
	d, err := l.Digest()
	if err != nil {
		return l
	}
	for _, other := range mounts(d) {
		if other == repo.RepositoryStr() {
			continue
		}
		return &remote.MountableLayer{Layer: l, Reference: repo.Registry.Repo(other).Digest(d.String())}
	}
	return l
}

type mountingIndex struct {
	index  v1.ImageIndex
	repo   name.Repository
	mounts func(v1.Hash) []string
}

func (m *mountingIndex) MediaType() (types.MediaType, error)         { return m.index.MediaType() }
func (m *mountingIndex) Digest() (v1.Hash, error)                    { return m.index.Digest() }
func (m *mountingIndex) Size() (int64, error)                        { return m.index.Size() }
func (m *mountingIndex) IndexManifest() (*v1.IndexManifest, error)   { return m.index.IndexManifest() }
func (m *mountingIndex) RawManifest() ([]byte, error)                { return m.index.RawManifest() }
func (m *mountingIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return m.index.ImageIndex(h) }

func (m *mountingIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.index.Image(h)
	if err != nil {
		return nil, err
	}
	return &mountingImage{Image: img, repo: m.repo, mounts: m.mounts}, nil
}
