package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/manifest"
)

// The controller's tests run it against a host whose instances are HTTP
// servers in the test process: each "guest" answers on a real 127.0.0.1
// port, as a forwarded guest port would, so health probes, HAProxy and the
// client loops are all real; only the virtual machines are not. (The guest
// tests of cmd/kiln run the same controller on libvirt with real guests.)

// behaviour is how an image's instances answer.
type behaviour struct {
	broken bool // /healthz answers 503
}

// serverHost is a deploy.Hypervisor whose instances are HTTP servers.
type serverHost struct {
	t      *testing.T
	uri    string
	images map[string]behaviour // by digest

	mu      sync.Mutex
	insts   map[string]*server
	creates map[string]int // by name
	load    float64        // of new instances
	log     []string
	lists   int // calls of Instances
}

type server struct {
	inst deploy.Instance
	ln   net.Listener
	srv  *http.Server
	sick bool // set by the test: the app fails its health check
	hits int
	// CPU use: cpuBase until loadSince, load (of one vCPU) since.
	cpuBase   time.Duration
	load      float64
	loadSince time.Time
}

func newServerHost(t *testing.T, images map[string]behaviour) *serverHost {
	h := &serverHost{t: t, uri: "qemu:///system", images: images, insts: map[string]*server{}, creates: map[string]int{}}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.insts {
			s.srv.Close()
		}
	})
	return h
}

func (h *serverHost) URI() string { return h.uri }

func (h *serverHost) Instances(ctx context.Context) ([]deploy.Instance, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lists++
	var out []deploy.Instance
	for _, s := range h.insts {
		out = append(out, s.inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, 0, nil
}

func (h *serverHost) Create(ctx context.Context, spec deploy.InstanceSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.insts[spec.Name]; ok {
		return fmt.Errorf("%s exists", spec.Name)
	}
	s := &server{inst: deploy.Instance{Name: spec.Name, Host: h.uri, State: deploy.Running, Meta: spec.Meta}}
	if err := h.listen(s, 0); err != nil {
		return err
	}
	h.insts[spec.Name] = s
	h.creates[spec.Name]++
	h.log = append(h.log, "create "+spec.Name)
	return nil
}

// listen starts the instance's app on port (0: a free one).
func (h *serverHost) listen(s *server, port int) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	b := h.images[s.inst.Meta.Image]
	name := s.inst.Name
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		sick := s.sick
		h.mu.Unlock()
		if b.broken || sick {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		s.hits++
		h.mu.Unlock()
		io.WriteString(w, name)
	})
	s.ln, s.srv = ln, &http.Server{Handler: mux}
	if s.loadSince.IsZero() {
		s.load, s.loadSince = h.load, time.Now()
	}
	s.inst.Ports = map[int]int{8080: ln.Addr().(*net.TCPAddr).Port}
	go s.srv.Serve(ln)
	return nil
}

func (h *serverHost) Start(ctx context.Context, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.insts[name]
	if !ok {
		return errors.New("no instance " + name)
	}
	if s.inst.State != deploy.Running {
		s.inst.State = deploy.Running
		return h.listen(s, s.inst.Ports[8080])
	}
	return nil
}

func (h *serverHost) Restart(ctx context.Context, name string) error {
	h.mu.Lock()
	s, ok := h.insts[name]
	if ok {
		s.srv.Close()
		s.sick = false
		s.inst.State = deploy.Stopped
		h.log = append(h.log, "restart "+name)
	}
	h.mu.Unlock()
	return h.Start(ctx, name)
}

func (h *serverHost) Delete(ctx context.Context, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.insts[name]; ok {
		s.srv.Close()
		delete(h.insts, name)
		h.log = append(h.log, "delete "+name)
	}
	return nil
}

func (h *serverHost) Stats(ctx context.Context, name string) (deploy.Stats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.insts[name]
	if !ok {
		return deploy.Stats{}, errors.New("no instance " + name)
	}
	// CPU time so far, plus the current load (a share of the vCPU) since
	// it was set.
	return deploy.Stats{CPUTime: s.cpuBase + time.Duration(float64(time.Since(s.loadSince))*s.load), VCPUs: 1}, nil
}

func (h *serverHost) Console(ctx context.Context, name string, offset int64, w io.Writer) (int64, error) {
	return offset, nil
}

// setSick makes an instance's app fail (or pass) its health check.
func (h *serverHost) setSick(name string, sick bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.insts[name]; ok {
		s.sick = sick
	}
}

// setLoad makes every instance burn load (0-1 of a vCPU) from now on.
func (h *serverHost) setLoad(load float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.insts {
		now := time.Now()
		s.cpuBase += time.Duration(float64(now.Sub(s.loadSince)) * s.load)
		s.load, s.loadSince = load, now
	}
	h.load = load
}

func (h *serverHost) hits() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for name, s := range h.insts {
		out[name] = s.hits
	}
	return out
}

// fleetDir writes a fleet file, a recipe and images (stand-in files with
// the manifest kiln bake writes beside them) into a short temporary
// directory (HAProxy's socket paths must stay short).
type fleetDir struct {
	dir string
}

func newFleetDir(t *testing.T) *fleetDir {
	dir, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	write(t, filepath.Join(dir, "web.yaml"), `apiVersion: kiln/v1
kind: Recipe
name: web
checks:
  - http: {port: 8080, path: /healthz}
`)
	return &fleetDir{dir: dir}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// image writes an image file and its manifest; it returns the digest
// Resolve gives it.
func (d *fleetDir) image(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(d.dir, name+".qcow2")
	content := "stand-in image " + name
	write(t, path, content)
	sum := sha256.Sum256([]byte(content))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	m := &manifest.Manifest{
		Kiln:      manifest.Kiln{Version: "test", ImageLayout: "kiln-image-v9"},
		Recipe:    manifest.Recipe{Name: "web", File: "web.yaml", Digest: digest, ImageKey: "k"},
		Base:      manifest.Base{Ref: "debian:trixie", Kind: manifest.BasePackages, Suite: "trixie"},
		OS:        manifest.OS{Distro: "debian", Release: "trixie"},
		Disk:      manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios"}, VirtualSize: 4 << 30, FileSize: int64(len(content))},
		Artifacts: []manifest.Artifact{{Name: filepath.Base(path), Size: int64(len(content)), SHA256: digest}},
		Build:     manifest.Build{Mode: "offline"},
	}
	if err := manifest.Write(manifest.PathFor(path), m); err != nil {
		t.Fatal(err)
	}
	return digest
}

func (d *fleetDir) fleet(t *testing.T, body string) string {
	p := filepath.Join(d.dir, "fleet.yaml")
	write(t, p, body)
	return p
}

// newController makes a controller of the fleet file on host h; its
// events go to the test log.
func newController(t *testing.T, file, stateDir string, h *serverHost) *Controller {
	t.Helper()
	c, err := New(Options{
		File: file, StateDir: stateDir,
		Connect: func(ctx context.Context, uri string) (deploy.Hypervisor, error) { return h, nil },
		Resolve: func(ctx context.Context, s *deploy.Set) (*deploy.Resolved, error) {
			return deploy.Resolve(ctx, s, nil, "")
		},
		Period: 200 * time.Millisecond, ProbeTimeout: time.Second, DrainTimeout: 5 * time.Second, HealthTimeout: 20 * time.Second,
		OnEvent: func(e view.Event) { t.Logf("event %s %s %s: %s", e.Kind, e.Set, e.Instance, e.Message) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runUntil ticks c until cond holds or the deadline passes.
func runUntil(t *testing.T, c *Controller, within time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := c.Run(ctx, func(*Controller) bool { return cond() })
	if err != nil {
		t.Fatalf("waiting %s for %s: %v", within, what, err)
	}
}

// client sends requests through addr until stopped and counts failures.
type client struct {
	ok, failed int
	errs       []string
	stop       chan struct{}
	done       sync.WaitGroup
	mu         sync.Mutex
	seen       map[string]int
}

func startClient(addr string, workers int) *client {
	c := &client{stop: make(chan struct{}), seen: map[string]int{}}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range workers {
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			for {
				select {
				case <-c.stop:
					return
				default:
				}
				resp, err := hc.Get("http://" + addr + "/")
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				c.mu.Lock()
				if err != nil || resp.StatusCode != 200 {
					c.failed++
					if len(c.errs) < 10 {
						c.errs = append(c.errs, fmt.Sprint(err, resp))
					}
				} else {
					c.ok++
					c.seen[strings.TrimSpace(string(body))]++
				}
				c.mu.Unlock()
				time.Sleep(5 * time.Millisecond) // a client's pace, not a wait for readiness
			}
		}()
	}
	return c
}

func (c *client) finish() (ok, failed int, errs []string, seen map[string]int) {
	close(c.stop)
	c.done.Wait()
	return c.ok, c.failed, c.errs, c.seen
}

// setState changes what the host reports of an instance (a paused domain).
func (h *serverHost) setState(name string, st deploy.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.insts[name]; ok {
		s.inst.State = st
	}
}

func (h *serverHost) Protect(ctx context.Context, name string, p deploy.Protection) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.insts[name]
	if !ok {
		return errors.New("no instance " + name)
	}
	s.inst.Meta.Protect = p.String()
	return nil
}
