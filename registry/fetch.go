package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/progress"
)

// fetched is a verified blob on local disk.
type fetched struct {
	path      string
	fromCache bool
	// downloaded counts body bytes received, resumes included.
	downloaded int64
}

// fetchBlob gets a blob into dir/sha256/<hex> (the blob cache, or a
// scratch dir beside the output), verified. An interrupted download
// leaves dir/partial/<hex>, which the next attempt — in this run after a
// dropped connection, or in the next run after Ctrl-C — continues with a
// Range request instead of starting over.
func (c *Client) fetchBlob(ctx context.Context, s store, d v1.Descriptor, dir string, step *progress.Step) (*fetched, error) {
	final := filepath.Join(dir, "sha256", d.Digest.Hex)
	if ok, err := cachedBlob(final, d); ok {
		now := time.Now()
		os.Chtimes(final, now, now) // last used, for kiln cache prune
		return &fetched{path: final, fromCache: true}, nil
	} else if err != nil {
		return nil, err
	}
	for _, sub := range []string{"sha256", "partial"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	partial := filepath.Join(dir, "partial", d.Digest.Hex)
	unlock, err := flock.Lock(ctx, partial+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have finished it while we waited.
	if ok, _ := cachedBlob(final, d); ok {
		return &fetched{path: final, fromCache: true}, nil
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, off, err := rehash(f)
	if err != nil {
		return nil, err
	}
	if off > d.Size {
		if err := restart(f, &h, &off); err != nil {
			return nil, err
		}
	}
	res := &fetched{path: final}
	delay := c.opts.RetryDelay
	failures := 0
	for off < d.Size {
		before := off
		err := c.fetchFrom(ctx, s, d, f, h, &off, res, step)
		if err == nil {
			break
		}
		if errors.Is(err, errNoRange) {
			if err := restart(f, &h, &off); err != nil {
				return nil, err
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var nf *NotFoundError
		var le *localError
		if errors.As(err, &nf) {
			return nil, err
		}
		if errors.As(err, &le) {
			// A full disk or a broken file system does not pass with a
			// retry; what was written stays for the next run to resume.
			return nil, fmt.Errorf("%s: blob %s: %w", s, d.Digest, le.err)
		}
		if off > before {
			failures, delay = 0, c.opts.RetryDelay // progress: a fresh budget
		}
		failures++
		if failures > c.opts.Retries {
			return nil, fmt.Errorf("%s: blob %s: giving up after %d attempts at byte %d of %d: %w (run again to resume)", s, d.Digest, failures, off, d.Size, err)
		}
		step.Note(fmt.Sprintf("transfer interrupted at %s of %s (%v); resuming", byteCount(off), byteCount(d.Size), err))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay *= 2
	}
	if off != d.Size {
		return nil, fmt.Errorf("%s: blob %s: %d bytes, want %d", s, d.Digest, off, d.Size)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	if got != d.Digest {
		f.Close()
		os.Remove(partial)
		return nil, fmt.Errorf("%s: blob %s: %w", s, d.Digest, &DigestError{Want: d.Digest, Got: got})
	}
	// No fsync here: every use of a cached blob checks its digest first
	// (cachedBlob), so a blob a crash left short or empty is fetched again.
	// The file a pull writes for the user is fsynced before it appears.
	if err := os.Rename(partial, final); err != nil {
		return nil, err
	}
	return res, nil
}

// fetchFrom appends the blob from *off on to f, hashing as it goes.
func (c *Client) fetchFrom(ctx context.Context, s store, d v1.Descriptor, f *os.File, h hash.Hash, off *int64, res *fetched, step *progress.Step) error {
	rc, err := s.blob(ctx, d.Digest, *off)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := f.Seek(*off, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	last := time.Time{}
	for *off < d.Size {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if *off+int64(n) > d.Size {
				return fmt.Errorf("blob %s: longer than its %d bytes", d.Digest, d.Size)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return &localError{err}
			}
			h.Write(buf[:n])
			*off += int64(n)
			res.downloaded += int64(n)
			if time.Since(last) > 100*time.Millisecond {
				step.Advance(*off, d.Size)
				last = time.Now()
			}
		}
		if rerr == io.EOF {
			if *off < d.Size {
				return io.ErrUnexpectedEOF
			}
			break
		}
		if rerr != nil {
			return rerr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	step.Advance(*off, d.Size)
	return nil
}

// localError is a failure on this machine (writing the download), not in
// the transfer: not worth a retry.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// rehash reads what a partial file holds into a fresh hash.
func rehash(f *os.File) (hash.Hash, int64, error) {
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(h, f)
	return h, n, err
}

func restart(f *os.File, h *hash.Hash, off *int64) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	*h, *off = sha256.New(), 0
	return nil
}

// cachedBlob reports whether path holds the blob. An entry that does not
// match (a disk error, a hand edit) is removed and fetched again.
func cachedBlob(path string, d v1.Descriptor) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return false, err
	}
	if n == d.Size && h == d.Digest {
		return true, nil
	}
	os.Remove(path)
	return false, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
