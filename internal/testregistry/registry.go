package testregistry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Options for Start.
type Options struct {
	// Users, when set, turns on htpasswd auth: user name -> password. The
	// htpasswd file is written with bcrypt entries made in Go.
	Users map[string]string
}

// Registry is a running docker-registry on 127.0.0.1 with its own config and
// filesystem storage in t.TempDir(); stopped (by pid, process group) in
// t.Cleanup.
type Registry struct {
	Host string // "127.0.0.1:PORT"
	Dir  string // storage root
	Log  string // the registry's stdout and stderr, appended to across restarts

	bin    string
	config string
	auth   bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
}

const (
	// readyTimeout bounds one start: docker-registry listens within
	// milliseconds, but a loaded CI machine may be slow.
	readyTimeout = 30 * time.Second
	// portAttempts is how often Start tries a new port when another
	// process took the free one before docker-registry bound it.
	portAttempts = 5
)

// errAddrInUse says that docker-registry could not bind its port.
var errAddrInUse = errors.New("address already in use")

// Start runs a docker-registry for the test and waits until it answers
// GET /v2/. It fails the test, with the tail of the registry's log, when
// the registry does not come up.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin := testutil.NeedTool(t, "docker-registry")
	r, err := launch(bin, t.TempDir(), opts)
	if r != nil {
		t.Cleanup(r.Stop)
	}
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return r
}

// Launch is Start for programs that are not tests (the benchmarks): the
// registry keeps its files in dir, and the caller stops it.
func Launch(dir string, opts Options) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not found (run make deps): %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := launch(bin, dir, opts)
	if err != nil && r != nil {
		r.Stop()
	}
	return r, err
}

func launch(bin, base string, opts Options) (*Registry, error) {
	r := &Registry{
		Dir:    filepath.Join(base, "storage"),
		Log:    filepath.Join(base, "registry.log"),
		bin:    bin,
		config: filepath.Join(base, "config.yml"),
		auth:   len(opts.Users) > 0,
	}
	htpasswd := ""
	if r.auth {
		htpasswd = filepath.Join(base, "htpasswd")
		if err := writeHtpasswd(htpasswd, opts.Users); err != nil {
			return nil, err
		}
	}
	// A fixed secret, kept across Restart: upload URLs carry state signed
	// with it, and a registry that came back with a new random secret
	// would refuse uploads begun before it went down.
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	var err error
	for range portAttempts {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		r.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cfg := configYAML(r.Host, r.Dir, hex.EncodeToString(secret), htpasswd)
		if err = os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
			break
		}
		if err = r.start(); !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return r, fmt.Errorf("start docker-registry: %v\n%s", err, r.logTail())
	}
	return r, nil
}

// URL is the registry's base URL, "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return "http://" + r.Host }

// Stop kills the registry's process group and waits for it to exit. It is
// idempotent; tests call it to simulate a registry that is down.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	select {
	case <-r.done:
		// Already exited (and reaped): its pid, and so its group id, may
		// belong to someone else now.
	default:
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-r.done
	r.cmd = nil
}

// Restart stops the registry if it runs and starts it again on the same
// port with the same storage and secret, for "registry down, then back".
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		t.Fatalf("testregistry: restart docker-registry on %s: %v\n%s", r.Host, err, r.logTail())
	}
}

// start runs docker-registry with r.config and waits until it is ready.
func (r *Registry) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log, err := os.OpenFile(r.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close() // the child keeps its own descriptor
	st, err := log.Stat()
	if err != nil {
		return err
	}
	since := st.Size() // this attempt's part of the log
	fmt.Fprintf(log, "--- testregistry: starting on %s ---\n", r.Host)

	cmd := exec.Command(r.bin, "serve", r.config)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done

	err = r.waitReady(done)
	if err == nil {
		return nil
	}
	select {
	case <-done:
	default:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	r.cmd = nil
	if b, _ := readFrom(r.Log, since); strings.Contains(string(b), "address already in use") {
		return fmt.Errorf("%w: %s", errAddrInUse, r.Host)
	}
	return err
}

// waitReady polls GET /v2/ until the registry answers as a registry (200,
// or 401 with auth on), exits, or readyTimeout passes.
func (r *Registry) waitReady(exited <-chan struct{}) error {
	want := http.StatusOK
	if r.auth {
		want = http.StatusUnauthorized
	}
	// A probe that hangs (something else holds the port) ends when the
	// registry exits, so that the failure is seen at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer yet")
	for {
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited before it was ready (last probe: %v)", last)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry not ready after %v: %v", readyTimeout, last)
		}
		req, err := http.NewRequestWithContext(ctx, "GET", r.URL()+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// The header tells our registry from whatever else may
			// have grabbed the port.
			api := resp.Header.Get("Docker-Distribution-Api-Version")
			if resp.StatusCode == want && api == "registry/2.0" {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s (Docker-Distribution-Api-Version %q)", resp.Status, api)
		}
		last = err
		select {
		case <-exited:
		case <-tick.C:
		}
	}
}

// configYAML is the registry's whole configuration: loopback only,
// filesystem storage with deletes, and htpasswd auth when htpasswd is set.
func configYAML(host, storage, secret, htpasswd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    # Nothing removes half-done uploads behind a test's back.
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
`, strconv.Quote(storage), host, secret)
	if htpasswd != "" {
		fmt.Fprintf(&b, `auth:
  htpasswd:
    realm: kiln-test
    path: %s
`, strconv.Quote(htpasswd))
	}
	return b.String()
}

// writeHtpasswd writes user:bcrypt lines, sorted by user.
func writeHtpasswd(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") {
			return fmt.Errorf("htpasswd user name %q: empty or has ':' or a newline", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		// The lowest cost: these are throwaway test passwords, and every
		// authenticated request makes the registry check one.
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("htpasswd entry for %q: %w", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail is the end of the registry's log, for failure messages.
func (r *Registry) logTail() string {
	const tailBytes = 4 << 10
	st, err := os.Stat(r.Log)
	if err != nil {
		return fmt.Sprintf("(no registry log: %v)", err)
	}
	b, err := readFrom(r.Log, max(0, st.Size()-tailBytes))
	if err != nil {
		return fmt.Sprintf("(registry log: %v)", err)
	}
	return fmt.Sprintf("--- tail of %s ---\n%s", r.Log, b)
}

func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}
