package testregistry

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestStartServesV2(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})

	if !strings.HasPrefix(r.Host, "127.0.0.1:") || r.URL() != "http://"+r.Host {
		t.Fatalf("Host %q, URL %q: want 127.0.0.1:PORT and its http URL", r.Host, r.URL())
	}
	resp := do(t, http.DefaultClient, "GET", r.URL()+"/v2/", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %s %v", resp.Status, resp.Header)
	}
	cfg, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "addr: "+r.Host+"\n") {
		t.Errorf("config does not listen on %s only:\n%s", r.Host, cfg)
	}
	if log, _ := os.ReadFile(r.Log); !strings.Contains(string(log), "listening on "+r.Host) {
		t.Errorf("registry log %s does not say it listens on %s:\n%s", r.Log, r.Host, log)
	}
}

func TestBlobUploadAndRange(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	data := randomBytes(t, 100<<10)

	dgst := pushBlob(t, http.DefaultClient, r.URL(), "kiln/test", data)

	// The blob is in the storage root, where distribution keeps blobs.
	stored := filepath.Join(r.Dir, "docker/registry/v2/blobs/sha256", dgst[7:9], dgst[7:], "data")
	if b, err := os.ReadFile(stored); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("blob not stored at %s: %v", stored, err)
	}
	resp := do(t, http.DefaultClient, "GET", r.URL()+"/v2/kiln/test/blobs/"+dgst, nil, http.Header{"Range": {"bytes=1000-1999"}})
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("ranged GET: %s, want 206", resp.Status)
	}
	if !bytes.Equal(body, data[1000:2000]) {
		t.Fatalf("ranged GET: %d bytes, not bytes 1000-1999 of the blob", len(body))
	}
}

func TestAuth(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{Users: map[string]string{"alice": "s3cret", "bob": "hunter2"}})

	for _, c := range []struct {
		name, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "alice", "nope", http.StatusUnauthorized},
		{"unknown user", "eve", "s3cret", http.StatusUnauthorized},
		{"alice", "alice", "s3cret", http.StatusOK},
		{"bob", "bob", "hunter2", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", r.URL()+"/v2/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if resp.StatusCode != c.want {
				t.Fatalf("GET /v2/: %s, want %d", resp.Status, c.want)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %v", resp.Header)
			}
		})
	}
}

func TestStopRestartKeepsContent(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	client := noKeepAlive()
	data := randomBytes(t, 10<<10)
	dgst := pushBlob(t, client, r.URL(), "kiln/keep", data)

	// An upload begun before the registry goes down...
	first, second := data[:4<<10], data[4<<10:]
	loc := startUpload(t, client, r.URL(), "kiln/resumed")
	resp := do(t, client, "PATCH", loc, first, http.Header{"Content-Type": {"application/octet-stream"}})
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %s", resp.Status)
	}
	loc = resolve(t, loc, resp.Header.Get("Location"))

	host := r.Host
	r.Stop()
	r.Stop() // idempotent
	if _, err := client.Get(r.URL() + "/v2/"); err == nil {
		t.Fatal("GET /v2/ answered after Stop")
	}
	r.Restart(t)
	if r.Host != host {
		t.Fatalf("Restart moved the registry from %s to %s", host, r.Host)
	}

	resp = do(t, client, "GET", r.URL()+"/v2/kiln/keep/blobs/"+dgst, nil, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("blob after restart: %s, %d bytes", resp.Status, len(b))
	}
	// ...finishes after it is back: same storage, same secret.
	resp = do(t, client, "PUT", withDigest(t, loc, dgst), second, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("finishing an upload begun before the restart: %s %s", resp.Status, b)
	}
}

// A registry that cannot start leaves its reason in the log tail that
// Start puts in its failure, and a busy port is told from other failures
// so that Start tries another.
func TestStartFailures(t *testing.T) {
	testutil.Integration(t)
	bin := testutil.NeedTool(t, "docker-registry")
	dir := t.TempDir()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := &Registry{Host: busy.Addr().String(), Dir: filepath.Join(dir, "storage"), Log: filepath.Join(dir, "log"),
		bin: bin, config: filepath.Join(dir, "config.yml")}
	if err := os.WriteFile(r.config, []byte(configYAML(r.Host, r.Dir, "abc", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.start(); !errors.Is(err, errAddrInUse) {
		t.Errorf("start on a busy port: %v, want errAddrInUse", err)
	}

	if err := os.WriteFile(r.config, []byte("version: 0.1\nstorage: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = r.start()
	if err == nil || errors.Is(err, errAddrInUse) {
		t.Fatalf("start without storage: %v, want an early exit", err)
	}
	if tail := r.logTail(); !strings.Contains(tail, "storage") {
		t.Errorf("log tail does not give the reason:\n%s", tail)
	} else {
		t.Logf("the failure Start would report: %v\n%s", err, tail)
	}
	r.Stop() // nothing runs: a no-op
}

func TestConfigYAML(t *testing.T) {
	got := configYAML("127.0.0.1:5000", "/tmp/s", "abc", "/tmp/h")
	for _, want := range []string{
		"version: 0.1\n",
		"rootdirectory: \"/tmp/s\"\n",
		"delete:\n    enabled: true\n",
		"addr: 127.0.0.1:5000\n",
		"secret: abc\n",
		"htpasswd:\n    realm: kiln-test\n    path: \"/tmp/h\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(configYAML("127.0.0.1:5000", "/tmp/s", "abc", ""), "auth:") {
		t.Error("auth configured without users")
	}
}

// Test helpers, shared with the proxy tests.

// noKeepAlive is a client whose every request has a connection of its
// own: a fault then hits the request it was meant for.
func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// do sends a request and fails the test when there is no response.
func do(t testing.TB, c *http.Client, method, u string, body []byte, h http.Header) *http.Response {
	t.Helper()
	resp, err := try(c, method, u, body, h)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp
}

func try(c *http.Client, method, u string, body []byte, h http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	return c.Do(req)
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", resp.Request.Method, resp.Request.URL, err)
	}
	return b
}

// startUpload begins a blob upload and returns its absolute Location.
func startUpload(t testing.TB, c *http.Client, base, repo string) string {
	t.Helper()
	resp := do(t, c, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s, want 202", resp.Status)
	}
	return resolve(t, resp.Request.URL.String(), resp.Header.Get("Location"))
}

// pushBlob uploads data monolithically (POST, then PUT ?digest=) and
// returns its digest.
func pushBlob(t testing.TB, c *http.Client, base, repo string, data []byte) string {
	t.Helper()
	dgst := sha256Digest(data)
	loc := startUpload(t, c, base, repo)
	resp := do(t, c, "PUT", withDigest(t, loc, dgst), data, http.Header{"Content-Type": {"application/octet-stream"}})
	if b := readAll(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT blob: %s %s", resp.Status, b)
	}
	return dgst
}

func resolve(t testing.TB, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.Parse(ref)
	if err != nil {
		t.Fatalf("Location %q: %v", ref, err)
	}
	return u.String()
}

func withDigest(t testing.TB, loc, dgst string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	return u.String()
}
