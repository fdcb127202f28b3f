package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-project/kiln/deploy/lb"
)

const (
	lbConcurrency = 8               // connections of the closed-loop client, kept alive
	lbDuration    = 2 * time.Second // per measurement; best of 2, interleaved
)

// benchLB compares a closed-loop HTTP client (lbConcurrency connections,
// each sending its next request when the answer is in) for lbDuration:
//
//	straight to one backend   vs   through deploy/lb's HAProxy, round robin over all 3
//
// on 3 loopback Go HTTP servers standing in for a scale set's instances.
// It prints requests/s and error rate of both and their ratio. Target (issue
// 15): through the balancer at least 90% of direct throughput, at the same
// error rate.
func benchLB() ([]string, error) {
	var addrs []string
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("web-%d\n", i)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
		go srv.Serve(l)
		defer srv.Close()
		addrs = append(addrs, l.Addr().String())
	}
	lines, err := lbThroughput(context.Background(), addrs)
	return append([]string{"3 stand-in instances (Go HTTP servers on 127.0.0.1)"}, lines...), err
}

// lbThroughput measures against backends given by address, the first
// being the direct one. The stand-ins are for now: the guests version of
// this benchmark will pass real instances' 127.0.0.1 forwards (port 8080).
func lbThroughput(ctx context.Context, backends []string) ([]string, error) {
	work, err := os.MkdirTemp("", "kiln-bench-lb")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	var servers []lb.Server
	for i, a := range backends {
		servers = append(servers, lb.Server{Name: fmt.Sprintf("web-%d", i), Addr: a})
	}
	b, err := lb.Start(ctx, lb.Config{Name: "bench", Listen: "127.0.0.1:0", Dir: filepath.Join(work, "lb")}, servers)
	if err != nil {
		return nil, err
	}
	defer b.Stop(context.Background())

	var direct, through loopResult
	for range 2 { // interleaved, so that a noisy moment does not favour one side
		direct = direct.best(closedLoop(backends[0]))
		through = through.best(closedLoop(b.Addr()))
	}
	version := "HAProxy"
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil { // "HAProxy version 2.6.12-1+deb12u4 ..."
		if f := strings.Fields(string(out)); len(f) > 2 {
			v, _, _ := strings.Cut(f[2], "-")
			version += " " + v
		}
	}
	ratio := through.rate() / direct.rate()
	sameErrors := through.errors <= direct.errors
	return []string{
		fmt.Sprintf("closed loop, %d keep-alive connections, %s per run, best of 2; %s, round robin over %d", lbConcurrency, lbDuration, version, len(backends)),
		fmt.Sprintf("direct to one instance: %8.0f req/s, error rate %s", direct.rate(), direct.errorRate()),
		fmt.Sprintf("through the balancer:   %8.0f req/s, error rate %s", through.rate(), through.errorRate()),
		fmt.Sprintf("balancer / direct: %.2f   (target >= 0.90 at the same error rate: %s)", ratio, okIf(ratio >= 0.9 && sameErrors)),
		// In a closed loop, latency is connections / rate: what the hop
		// adds to each request, to set against an instance's own time.
		fmt.Sprintf("the balancer's hop adds %.2f ms per request (%.2f ms direct, %.2f ms through it)",
			1e3*(lbConcurrency/through.rate()-lbConcurrency/direct.rate()), 1e3*lbConcurrency/direct.rate(), 1e3*lbConcurrency/through.rate()),
	}, nil
}

type loopResult struct {
	ok, errors int64
	took       time.Duration
}

func (r loopResult) rate() float64 { return float64(r.ok) / r.took.Seconds() }

func (r loopResult) errorRate() string {
	return fmt.Sprintf("%.3f%% (%d of %d)", 100*float64(r.errors)/float64(max(1, r.ok+r.errors)), r.errors, r.ok+r.errors)
}

func (r loopResult) best(o loopResult) loopResult {
	if r.took == 0 || o.rate() > r.rate() {
		return o
	}
	return r
}

// closedLoop sends GET / to addr from lbConcurrency goroutines for
// lbDuration, each on a connection of its own kept alive.
func closedLoop(addr string) loopResult {
	tr := &http.Transport{MaxIdleConnsPerHost: lbConcurrency}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(lbDuration)
	for range lbConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return loopResult{ok: ok.Load(), errors: failed.Load(), took: time.Since(start)}
}
