package builder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/ctxio"
	"github.com/kiln-project/kiln/recipes"
)

// What kiln reads of a mirror's Release file, and how long it waits for it.
// Debian's are about 150 KB; the Codename field is among the first lines,
// and reading stops there.
const (
	releaseFileLimit   = 1 << 20
	releaseFileTimeout = 30 * time.Second
)

// resolveSuite returns the codename of the release a package base is built
// for: the recipe's own, or for an alias (debian:stable) the one the
// archive mirror's dists/<alias>/Release names today, which must be a
// release kiln supports. The base's cache key and the manifest use it.
func (b *Builder) resolveSuite(ctx context.Context, plan *recipes.Plan, base recipes.Base, m Mirrors) (string, error) {
	if !base.IsAlias() {
		return base.Suite, nil
	}
	codename, err := releaseCodename(ctx, m.Archive, base.Suite)
	if err != nil {
		return "", fmt.Errorf("finding which release %s is: %w", base, err)
	}
	if _, ok := recipes.LookupRelease(codename); !ok {
		return "", &recipes.Error{Pos: plan.Recipe.Position("base"), Path: "base",
			Msg: fmt.Sprintf("%s is %q on the mirror %s, a release this kiln does not build; name one it does: %s",
				base, codename, m.Archive, recipes.SupportedCodenames())}
	}
	b.note("base", "%s is debian:%s on %s", base, codename, m.Archive)
	return codename, nil
}

// releaseCodename reads the Codename field of <archive>/dists/<suite>/Release
// over HTTP(S), or from a file: URL for a local mirror. The read is bounded
// in size and time, and ends with ctx.
func releaseCodename(ctx context.Context, archive, suite string) (string, error) {
	src := strings.TrimSuffix(archive, "/") + "/dists/" + suite + "/Release"
	u, err := url.Parse(src)
	if err != nil {
		return "", fmt.Errorf("mirror URL %q: %w", archive, err)
	}
	ctx, cancel := context.WithTimeout(ctx, releaseFileTimeout)
	defer cancel()
	var body io.Reader
	switch u.Scheme {
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s", src, resp.Status)
		}
		body = resp.Body
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		body = f
	default:
		return "", fmt.Errorf("mirror %q is not an http(s) or file: URL", archive)
	}
	limited := &io.LimitedReader{R: body, N: releaseFileLimit}
	codename, err := codenameField(ctxio.Reader(ctx, limited))
	if err != nil {
		if limited.N == 0 {
			err = fmt.Errorf("%w in its first %d KiB", err, releaseFileLimit>>10)
		}
		return "", fmt.Errorf("%s: %w", src, err)
	}
	return codename, nil
}

// codenameField returns the Codename of a Release file. The checksum lists
// that follow the header end the search.
func codenameField(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		key, value, ok := strings.Cut(line, ":")
		if !ok || line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		switch key {
		case "Codename":
			value = strings.TrimSpace(value)
			if value == "" || strings.Trim(value, "abcdefghijklmnopqrstuvwxyz") != "" {
				return "", fmt.Errorf("Codename %q is not a release name", value)
			}
			return value, nil
		case "MD5Sum", "SHA1", "SHA256", "SHA512":
			return "", fmt.Errorf("no Codename field")
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no Codename field")
}
