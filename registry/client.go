package registry

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/version"
)

// Options configure a Client. The zero value is usable: the default
// docker/podman credentials, HTTPS except to loopback registries, no cache.
type Options struct {
	// Keychain finds credentials; default: docker and podman config files
	// and their credential helpers (go-containerregistry's default keychain).
	Keychain authn.Keychain
	// Insecure allows plain HTTP to every registry.
	Insecure bool
	// InsecureRegistries are hosts ("host:port") allowed plain HTTP. Loopback
	// registries always are; nothing else is, silently.
	InsecureRegistries []string
	// Transport is the HTTP transport under auth and retries (tests put a
	// fault-injecting proxy here); default go-containerregistry's.
	Transport http.RoundTripper
	// CacheDir is kiln's cache directory; blobs go under CacheDir/blobs.
	// Empty: no cache (pulls download every time).
	CacheDir string
	// Progress receives transfer events.
	Progress progress.Sink
	// Retries is how often a transfer is retried after a failure that may
	// pass (408, 429, 5xx, connection reset, cut body); default 6.
	Retries int
	// RetryDelay is the first wait between retries, doubled each time;
	// default 200 ms.
	RetryDelay time.Duration
}

// Client pushes, pulls and inspects kiln images.
type Client struct {
	opts      Options
	keychain  authn.Keychain
	transport http.RoundTripper
	backoff   remote.Backoff
	userAgent string
	sink      progress.Sink
}

// New returns a Client.
func New(opts Options) *Client {
	c := &Client{opts: opts, keychain: opts.Keychain, sink: progress.Or(opts.Progress)}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	if c.opts.Retries == 0 {
		c.opts.Retries = 6
	}
	if c.opts.RetryDelay == 0 {
		c.opts.RetryDelay = 200 * time.Millisecond
	}
	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	c.transport = &plainHTTPGuard{next: base, allowed: c.plainHTTPAllowed}
	c.backoff = remote.Backoff{Duration: c.opts.RetryDelay, Factor: 2, Jitter: 0.1, Steps: c.opts.Retries}
	c.userAgent = "kiln/" + version.String()
	return c
}

// store opens the store a reference names.
func (c *Client) store(r Ref) (store, error) {
	if r.IsLayout() {
		return openLayout(r.Layout)
	}
	repo := r.Remote.Context()
	if c.plainHTTPAllowed(repo.RegistryStr()) {
		// name.Insecure lets go-containerregistry fall back to HTTP.
		reg, err := name.NewRegistry(repo.RegistryStr(), name.Insecure)
		if err != nil {
			return nil, err
		}
		repo = reg.Repo(repo.RepositoryStr())
	}
	s := &remoteStore{repo: repo, c: c}
	if c.opts.CacheDir != "" {
		s.mounts = c.locations(repo.RegistryStr()).repos
	}
	return s, nil
}

func (c *Client) plainHTTPAllowed(host string) bool {
	if c.opts.Insecure || isLoopback(host) {
		return true
	}
	for _, h := range c.opts.InsecureRegistries {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// plainHTTPGuard refuses plain HTTP to registries the user did not allow
// it for: go-containerregistry itself would fall back to HTTP for private
// (RFC 1918) addresses without asking.
type plainHTTPGuard struct {
	next    http.RoundTripper
	allowed func(host string) bool
}

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowed(req.URL.Host) {
		return nil, fmt.Errorf("plain HTTP to %s refused: pass --insecure, or list it under `registries` with insecure: true in kiln's config", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

func (c *Client) blobDir() string {
	if c.opts.CacheDir == "" {
		return ""
	}
	return filepath.Join(c.opts.CacheDir, "blobs")
}
