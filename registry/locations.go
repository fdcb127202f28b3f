package registry

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// locations remembers which repositories of a registry hold which blobs
// (kiln pushed or pulled them there), so a push to a new repository mounts
// them instead of uploading. One append-only file per registry; a lost or
// stale record only costs an upload.
type locations struct {
	path string
	mu   sync.Mutex
}

func (c *Client) locations(registry string) *locations {
	safe := strings.NewReplacer("/", "_", ":", "_").Replace(registry)
	return &locations{path: filepath.Join(c.blobDir(), "locations", safe)}
}

// repos lists the repositories known to hold d, most recent first.
func (l *locations) repos(d v1.Hash) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reposLocked(d)
}

func (l *locations) reposLocked(d v1.Hash) []string {
	f, err := os.Open(l.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		digest, repo, ok := strings.Cut(sc.Text(), " ")
		if ok && digest == d.String() {
			out = append([]string{repo}, out...)
		}
	}
	return out
}

// add records that repo holds the blobs.
func (l *locations) add(repo string, blobs ...v1.Hash) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	var b strings.Builder
	for _, d := range blobs {
		if !slices.Contains(l.reposLocked(d), repo) {
			b.WriteString(d.String() + " " + repo + "\n")
		}
	}
	f.WriteString(b.String())
}
