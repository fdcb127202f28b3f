// Package fetch downloads base images into a content-addressed cache:
// digests are checked while the bytes arrive, an interrupted download
// resumes with a Range request, and a file enters the cache (by rename)
// only once its digest matches.
//
//	<dir>/sha256/<hex>           verified downloads
//	<dir>/partial/<key>.part     downloads in progress (key: sha256 of the URL)
package fetch

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kiln-project/kiln/internal/ctxio"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/internal/progress"
)

// Request names what to fetch and how to verify it: SHA256 directly, or
// the entry for the URL's file name in the SHA256SUMS file at SumsURL.
type Request struct {
	URL     string
	SHA256  string
	SumsURL string
}

// Fetcher downloads into Dir.
type Fetcher struct {
	Dir    string
	Client *http.Client  // default: http.DefaultClient
	Sink   progress.Sink // download progress, bytes
}

// Result is a fetched, verified file.
type Result struct {
	Path    string
	SHA256  string // hex
	Cached  bool   // already in the cache: nothing downloaded
	Resumed bool   // continued an interrupted download
}

// ChecksumError is a download whose digest is not the expected one.
type ChecksumError struct {
	URL       string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("fetch: %s: checksum mismatch: got sha256 %s, want %s", e.URL, e.Got, e.Want)
}

var hexRE = lazyre.New(`^[0-9a-f]{64}$`)

// Fetch returns the verified file for req, downloading (or resuming) it
// when it is not in the cache.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*Result, error) {
	want := strings.ToLower(req.SHA256)
	if want == "" && req.SumsURL != "" {
		var err error
		if want, err = f.sumFor(ctx, req); err != nil {
			return nil, err
		}
	}
	if !hexRE.MatchString(want) {
		return nil, fmt.Errorf("fetch: %s: a sha256 of 64 hex digits is required, got %q", req.URL, req.SHA256)
	}
	final := filepath.Join(f.Dir, "sha256", want)
	if _, err := os.Stat(final); err == nil {
		return &Result{Path: final, SHA256: want, Cached: true}, nil
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, "partial"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, "sha256"), 0o755); err != nil {
		return nil, err
	}
	unlock, err := flock.Lock(ctx, filepath.Join(f.Dir, "partial", want+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil { // fetched while we waited
		return &Result{Path: final, SHA256: want, Cached: true}, nil
	}
	sum := sha256.Sum256([]byte(req.URL))
	part := filepath.Join(f.Dir, "partial", hex.EncodeToString(sum[:16])+".part")
	resumed, err := f.download(ctx, req.URL, part)
	if err != nil {
		return nil, err
	}
	d, err := digest.File(part)
	if err != nil {
		return nil, err
	}
	got := d.Hex
	if got != want {
		os.Remove(part) // never resume from bytes that do not hash right
		return nil, &ChecksumError{URL: req.URL, Want: want, Got: got}
	}
	if err := os.Rename(part, final); err != nil {
		return nil, err
	}
	return &Result{Path: final, SHA256: want, Resumed: resumed}, nil
}

// download fetches url into part, continuing what part already holds when
// the server honours Range requests.
func (f *Fetcher) download(ctx context.Context, rawURL, part string) (bool, error) {
	have := int64(0)
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, fmt.Errorf("fetch: %w", err)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return false, fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	resumed := false
	total := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND
		resumed = true
		if total >= 0 {
			total += have
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		return true, nil // the partial file is already complete
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // no resume: start over
		have = 0
	default:
		return false, fmt.Errorf("fetch: %s: %s", rawURL, resp.Status)
	}
	out, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return false, err
	}
	step := progress.Begin(f.Sink, "download", total, "downloading "+path.Base(mustPath(rawURL)))
	if resumed {
		step.Note(fmt.Sprintf("resuming at %d bytes", have))
	}
	body := progress.NewReader(resp.Body, step, total)
	n, err := io.Copy(out, ctxio.Reader(ctx, body))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The bytes so far stay in part: the next Fetch resumes from there.
		return false, fmt.Errorf("fetch: %s: interrupted after %d bytes (run again to resume): %w", rawURL, have+n, err)
	}
	if total >= 0 && have+n != total {
		return false, fmt.Errorf("fetch: %s: got %d of %d bytes (run again to resume)", rawURL, have+n, total)
	}
	step.End("")
	return resumed, nil
}

// sumFor fetches a SHA256SUMS file and returns the digest it lists for the
// URL's file name (GNU "hex  name" / "hex *name" or BSD "SHA256 (name) = hex").
func (f *Fetcher) sumFor(ctx context.Context, req Request) (string, error) {
	name := path.Base(mustPath(req.URL))
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.SumsURL, nil)
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	resp, err := f.client().Do(hreq)
	if err != nil {
		return "", fmt.Errorf("fetch: checksums: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch: checksums %s: %s", req.SumsURL, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	bsd := regexp.MustCompile(`^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$`)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := bsd.FindStringSubmatch(line); m != nil && m[1] == name {
			return strings.ToLower(m[2]), nil
		}
		fields := strings.Fields(line)
		if len(fields) == 2 && strings.TrimPrefix(fields[1], "*") == name && hexRE.MatchString(strings.ToLower(fields[0])) {
			return strings.ToLower(fields[0]), nil
		}
	}
	return "", fmt.Errorf("fetch: %s lists no sha256 for %s", req.SumsURL, name)
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Path
}
