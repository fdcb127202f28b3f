package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// backend is a loopback HTTP server standing in for an instance: it
// answers its name, and holds a request to /hold until release is closed.
type backend struct {
	name    string
	addr    string
	srv     *http.Server
	hits    atomic.Int64
	held    chan struct{} // one value per /hold request that arrived
	release chan struct{}
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: l.Addr().String(), held: make(chan struct{}, 16), release: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.URL.Path == "/hold" {
			b.held <- struct{}{}
			<-b.release
		}
		io.WriteString(w, b.name)
	})}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.close() })
	return b
}

var closeOnce sync.Map

func (b *backend) close() {
	if _, done := closeOnce.LoadOrStore(b, true); done {
		return
	}
	select {
	case <-b.release:
	default:
		close(b.release)
	}
	b.srv.Close()
}

// needHAProxy skips on a laptop without HAProxy and fails under CI.
func needHAProxy(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedTool(t, "haproxy")
}

// shortDir is a runtime directory whose socket paths fit in 108 bytes
// (t.TempDir's paths carry the test's name and can be longer).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "b")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a balancer over backends and stops it when the test ends,
// checking that no HAProxy process is left.
func start(t *testing.T, cfg Config, servers []Server) *Balancer {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "web"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Dir == "" {
		cfg.Dir = shortDir(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(ctx, cfg, servers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAndCheck(t, b) })
	return b
}

func stopAndCheck(t *testing.T, b *Balancer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid := b.Pid()
	if err := b.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if ours(pid, b.path(cfgFile)) {
		t.Errorf("haproxy pid %d still runs after Stop", pid)
	}
	if left := leftovers(b.path(cfgFile)); len(left) > 0 {
		t.Errorf("haproxy processes %v still run after Stop", left)
	}
}

func servers(bs ...*backend) []Server {
	var out []Server
	for _, b := range bs {
		out = append(out, Server{Name: b.name, Addr: b.addr})
	}
	return out
}

var client = &http.Client{Timeout: 10 * time.Second}

// get sends one request through the balancer and returns who answered.
func get(t *testing.T, b *Balancer, path string) string {
	t.Helper()
	name, err := fetch(client, b.Addr(), path)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func fetch(c *http.Client, addr, path string) (string, error) {
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return string(body), nil
}

// spread sends n requests and counts who answered.
func spread(t *testing.T, b *Balancer, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		got[get(t, b, "/")]++
	}
	return got
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundRobin(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	lb := start(t, Config{}, servers(a, b, c))
	got := spread(t, lb, 300)
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		if got[name] < 90 || got[name] > 110 {
			t.Errorf("round robin over 300 requests: %v, want about 100 each", got)
			break
		}
	}
	st, err := lb.Stats(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 {
		t.Fatalf("Stats: %+v, want 3 servers", st)
	}
	for _, s := range st {
		if s.State != Ready || s.Total < 90 || s.Sessions != 0 {
			t.Errorf("Stats: %+v, want ready, about 100 sessions in all, none in flight", s)
		}
	}
	for _, f := range []string{"", cfgFile, stateFile, pidFile, logFile} {
		fi, err := os.Stat(filepath.Join(lb.Dir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600); f == "" && fi.Mode().Perm() != 0o700 || f != "" && fi.Mode().Perm() != want {
			t.Errorf("%s is %v: the runtime directory is private", fi.Name(), fi.Mode().Perm())
		}
	}
}

func TestLeastConn(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	lb := start(t, Config{Balance: LeastConn}, servers(a, b, c))
	if got := spread(t, lb, 30); len(got) != 3 {
		t.Errorf("leastconn with nothing in flight: %v, want all three", got)
	}
	// Hold a request on whichever server takes it: least connections then
	// keeps every new request off that one.
	done := make(chan error, 1)
	go func() { _, err := fetch(client, lb.Addr(), "/hold"); done <- err }()
	var busy *backend
	select {
	case <-a.held:
		busy = a
	case <-b.held:
		busy = b
	case <-c.held:
		busy = c
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("the held request reached no backend")
	}
	got := spread(t, lb, 30)
	if got[busy.name] != 0 || len(got) != 2 {
		t.Errorf("leastconn while %s holds a request: %v, want the other two only", busy.name, got)
	}
	close(busy.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMaintAndRemove(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	lb := start(t, Config{}, servers(a, b, c))
	ctx := ctxT(t, time.Minute)
	slot := func(name string) int {
		m, ok := lb.st.member(name)
		if !ok {
			return -1
		}
		return m.Slot
	}
	was := slot("web-1")

	maint := servers(a, b, c)
	maint[1].State = Maint
	if err := lb.Set(ctx, maint); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, lb, 30); got["web-1"] != 0 || len(got) != 2 {
		t.Errorf("web-1 in maintenance: %v, want web-0 and web-2 only", got)
	}

	if err := lb.Set(ctx, servers(a, c)); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, lb, 30); got["web-1"] != 0 || len(got) != 2 {
		t.Errorf("web-1 removed: %v, want web-0 and web-2 only", got)
	}
	if st, _ := lb.Stats(ctx); len(st) != 2 {
		t.Errorf("Stats after removing web-1: %+v, want 2 servers", st)
	}

	if err := lb.Set(ctx, servers(a, b, c)); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, lb, 30); got["web-1"] < 8 {
		t.Errorf("web-1 back: %v, want about a third for it", got)
	}
	if slot("web-0") != 0 || slot("web-2") != 2 {
		t.Errorf("slots moved: web-0 in %d, web-2 in %d, want 0 and 2 as before", slot("web-0"), slot("web-2"))
	}
	if slot("web-1") != was {
		t.Logf("web-1 came back in slot %d (had %d): a free slot, as a new member", slot("web-1"), was)
	}
}

func TestDrain(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	ctx := ctxT(t, time.Minute)
	// Only web-0 takes requests until the long one has reached it.
	first := servers(a, b, c)
	first[1].State, first[2].State = Maint, Maint
	lb := start(t, Config{}, first)
	type result struct {
		name string
		err  error
	}
	long := make(chan result, 1)
	go func() {
		name, err := fetch(client, lb.Addr(), "/hold")
		long <- result{name, err}
	}()
	select {
	case <-a.held:
	case <-ctx.Done():
		t.Fatal("the long request did not reach web-0")
	}
	if err := lb.Set(ctx, servers(a, b, c)); err != nil {
		t.Fatal(err)
	}
	if err := lb.Drain(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, lb, 30); got["web-0"] != 0 || len(got) != 2 {
		t.Errorf("web-0 draining: new requests went to %v, want web-1 and web-2 only", got)
	}
	st, err := lb.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Name != "web-0" || st[0].State != Drain || st[0].Sessions != 1 {
		t.Errorf("Stats while draining: %+v, want web-0 in drain with 1 session", st[0])
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = lb.WaitDrained(short, "web-0")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 sessions still in flight") {
		t.Errorf("WaitDrained with the long request in flight: %v, want a deadline error naming 1 session", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- lb.WaitDrained(ctx, "web-0") }()
	close(a.release)
	if r := <-long; r.err != nil || r.name != "web-0" {
		t.Errorf("the long request to the draining server: %q, %v, want web-0's answer", r.name, r.err)
	}
	if err := <-waited; err != nil {
		t.Errorf("WaitDrained: %v", err)
	}
	if err := lb.WaitDrained(ctx, "web-1"); err == nil || !strings.Contains(err.Error(), "Drain it first") {
		t.Errorf("WaitDrained on a ready server: %v, want an error", err)
	}
	if err := lb.Drain(ctx, "web-9"); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Errorf("Drain of a stranger: %v, want an error", err)
	}
}

// TestDrainAcrossReload: a request accepted before a reload is finished
// by the old worker; the drain waits for it there too.
func TestDrainAcrossReload(t *testing.T) {
	needHAProxy(t)
	ctx := ctxT(t, time.Minute)
	var bs []*backend
	for i := range 9 {
		bs = append(bs, newBackend(t, fmt.Sprintf("web-%d", i)))
	}
	lb := start(t, Config{}, servers(bs[0]))
	long := make(chan error, 1)
	go func() { _, err := fetch(client, lb.Addr(), "/hold"); long <- err }()
	<-bs[0].held
	before, err := lb.procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Set(ctx, servers(bs...)); err != nil { // 9 servers in 8 slots
		t.Fatal(err)
	}
	if err := lb.Drain(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	after, err := lb.procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Workers) != 2 || after.current() == before.current() {
		t.Fatalf("after the reload: workers %+v, want a new one and the old one finishing", after.Workers)
	}
	st, err := lb.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Name != "web-0" || st[0].Sessions != 1 {
		t.Errorf("Stats: %+v, want web-0 with the old worker's session", st[0])
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = lb.WaitDrained(short, "web-0")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitDrained while the old worker serves web-0: %v, want a deadline error", err)
	}
	close(bs[0].release)
	if err := <-long; err != nil {
		t.Errorf("the request the old worker held: %v", err)
	}
	if err := lb.WaitDrained(ctx, "web-0"); err != nil {
		t.Error(err)
	}
}

// load sends requests through the balancer from a few goroutines (half
// with keep-alive, half opening a connection each time) until stop, and
// counts answers and failures.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

func startLoad(addr string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for i := range workers {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: i%2 == 1}}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				if _, err := fetch(c, addr, "/"); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, err.Error())
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// progress waits until n more requests have been answered, so that each
// change happens under traffic.
func (l *load) progress(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for l.ok.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the load made no progress: %d answered, %d failed", l.ok.Load(), l.failed.Load())
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, with a deadline
	}
}

func (l *load) end() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// TestNoFailedRequests is the property rolling upgrades rely on: while
// clients send requests without pause, servers added beyond the slots
// (a reload), drained and removed, and moved to another address, not one
// request fails.
func TestNoFailedRequests(t *testing.T) {
	needHAProxy(t)
	ctx := ctxT(t, 2*time.Minute)
	var bs []*backend
	for i := range 11 {
		bs = append(bs, newBackend(t, fmt.Sprintf("web-%d", i)))
	}
	lb := start(t, Config{}, servers(bs[:3]...))
	if lb.st.Slots != 8 {
		t.Fatalf("3 servers got %d slots, want 8", lb.st.Slots)
	}
	l := startLoad(lb.Addr(), 4)
	defer l.end()
	l.progress(t, 200)

	// 11 servers in 8 slots: a reload.
	p, err := lb.procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Set(ctx, servers(bs...)); err != nil {
		t.Fatal(err)
	}
	q, err := lb.procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lb.st.Slots != 24 || q.current() == p.current() {
		t.Errorf("after growing to 11 servers: %d slots, worker %d (was %d), want 24 slots and a new worker", lb.st.Slots, q.current(), p.current())
	}
	l.progress(t, 200)

	// web-0 drained, then removed and stopped.
	if err := lb.Drain(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	if err := lb.WaitDrained(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	if err := lb.Set(ctx, servers(bs[1:]...)); err != nil {
		t.Fatal(err)
	}
	bs[0].close()
	l.progress(t, 200)

	// web-1 moves to another address; the old one stops.
	moved := newBackend(t, "web-1-moved")
	now := servers(bs[1:]...)
	now[0].Addr = moved.addr
	if err := lb.Set(ctx, now); err != nil {
		t.Fatal(err)
	}
	bs[1].close()
	l.progress(t, 200)

	// Four removed at once, without a drain: those in flight finish.
	if err := lb.Set(ctx, append(now[:1:1], now[5:]...)); err != nil {
		t.Fatal(err)
	}
	l.progress(t, 200)
	l.end()
	t.Logf("%d requests answered, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d requests failed, want none; first: %v", n, l.errs[:min(5, len(l.errs))])
	}
	got := spread(t, lb, 60)
	for name := range got {
		switch name {
		case "web-1-moved", "web-6", "web-7", "web-8", "web-9", "web-10":
		default:
			t.Errorf("%s answered after it was removed or moved (%v)", name, got)
		}
	}
}
