package controller

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/view"
)

// autoscaleSet samples the set's metrics every interval and evaluates its
// profile; a new capacity is written into the fleet file (the one desired
// state, as kiln deploy scale does), and placement follows it.
func (c *Controller) autoscaleSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState) error {
	a := s.Autoscale
	now := c.now()
	if !a.Enabled() || now.Before(st.NextEvaluate) {
		return nil
	}
	c.mu.Lock()
	st.NextEvaluate = now.Add(a.Interval)
	c.mu.Unlock()
	insts, err := c.observe(ctx, hosts, s.Name)
	if err != nil {
		return err
	}
	var running []deploy.Instance
	for _, in := range insts {
		if in.State == deploy.Running {
			running = append(running, in)
		}
	}
	samples := map[string][]float64{}
	samples[autoscale.MetricCPU] = c.sampleCPU(ctx, hosts, st, running, now)
	for name, m := range a.Metrics {
		samples[name] = c.sampleHTTP(ctx, m, running)
	}
	// Keep each series as long as the longest window that reads it.
	keep := map[string]time.Duration{}
	for _, r := range a.Profile.Rules {
		keep[r.Metric] = max(keep[r.Metric], r.TimeWindow+2*a.Interval)
	}
	c.mu.Lock()
	for name, values := range samples {
		s := st.Metrics[name]
		// Samples are taken at the first tick once the interval has
		// passed: at most a tick's period later than the interval.
		s.Interval = a.Interval + c.opts.Period
		s.Samples = append(s.Samples, autoscale.Sample{At: now, Values: values})
		for len(s.Samples) > 0 && now.Sub(s.Samples[0].At) > keep[name] {
			s.Samples = s.Samples[1:]
		}
		st.Metrics[name] = s
	}
	in := autoscale.Input{Now: now, Capacity: s.Capacity, LastAction: st.LastScale, Metrics: st.Metrics}
	c.mu.Unlock()
	d := autoscale.Evaluate(a.Profile, in)
	c.mu.Lock()
	st.Decision = d.Reason
	if d.Changed {
		st.LastScale = now
	}
	c.mu.Unlock()
	if !d.Changed {
		return nil
	}
	if err := deploy.SetCapacity(c.opts.File, s.Name, d.Capacity); err != nil {
		return fmt.Errorf("autoscale: %w", err)
	}
	s.Capacity = d.Capacity // placement, later in this tick, follows at once
	c.event(s.Name, "", view.EventScaled, fmt.Sprintf("autoscale %s: %s", d.Outcome, d.Reason))
	return nil
}

// sampleCPU is each running instance's CPU percentage since its last
// reading; an instance read for the first time (or restarted since) has no
// value yet.
func (c *Controller) sampleCPU(ctx context.Context, hosts deploy.Hosts, st *SetState, running []deploy.Instance, now time.Time) []float64 {
	var values []float64
	seen := map[string]bool{}
	for _, in := range running {
		h, ok := hosts[in.Host]
		if !ok {
			continue
		}
		stats, err := h.Stats(ctx, in.Name)
		if err != nil {
			continue
		}
		seen[in.Name] = true
		c.mu.Lock()
		last, had := st.CPU[in.Name]
		st.CPU[in.Name] = cpuReading{At: now, CPUTime: stats.CPUTime}
		c.mu.Unlock()
		if !had {
			continue
		}
		if p, ok := deploy.CPUPercent(deploy.Stats{CPUTime: last.CPUTime, VCPUs: stats.VCPUs}, stats, now.Sub(last.At)); ok {
			values = append(values, p)
		}
	}
	c.mu.Lock()
	for name := range st.CPU {
		if !seen[name] {
			delete(st.CPU, name)
		}
	}
	c.mu.Unlock()
	return values
}

// sampleHTTP reads a user metric from every running instance: an HTTP
// endpoint whose body is a number. An instance that does not answer with
// one adds no value.
func (c *Controller) sampleHTTP(ctx context.Context, m health.HTTPProbe, running []deploy.Instance) []float64 {
	var mu sync.Mutex
	var values []float64
	timeout := c.opts.ProbeTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var wg sync.WaitGroup
	for _, in := range running {
		addr := reach(in, m.Port)
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, ok := readNumber(ctx, "http://"+addr+m.Path, timeout)
			if ok {
				mu.Lock()
				values = append(values, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return values
}

func readNumber(ctx context.Context, url string, timeout time.Duration) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	v, err := strconv.ParseFloat(strings.TrimSpace(string(body)), 64)
	if resp.StatusCode != http.StatusOK || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}
