package view

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/internal/testchromium"
	"github.com/kiln-project/kiln/internal/testutil"
)

// TestBrowser loads the view in a real headless Chromium and checks what
// a person sees: every instance with its state and health, a hostile
// health reason as plain text, the drawing; then an instance stops, and
// the open page shows it without being reloaded. The page must ask for
// nothing but the view's own URLs and complain of nothing (a
// Content-Security-Policy violation is a console error). Screenshots are
// kept as test artifacts.
func TestBrowser(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedTool(t, "dot")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := testchromium.Start(t)

	t.Run("live", func(t *testing.T) {
		src := newFakeSource(sample())
		srv := httptest.NewServer(Handler(src, Options{Interval: 200 * time.Millisecond}))
		t.Cleanup(srv.Close)
		p := b.NewPage(ctx, t)
		p.Navigate(ctx, srv.URL+"/")
		p.WaitFor(ctx, "the instances", `document.querySelectorAll("tr[data-instance]").length === 5`)
		p.WaitFor(ctx, "the live stream", `document.getElementById("status").innerText.startsWith("Live")`)
		p.WaitFor(ctx, "the drawing", `document.getElementById("drawing").complete && document.getElementById("drawing").naturalWidth > 0`)

		row := func(name string) string {
			t.Helper()
			rows := p.Text(ctx, fmt.Sprintf("tr[data-instance=%q]", name))
			if len(rows) != 1 {
				t.Fatalf("the page shows %d rows for %s", len(rows), name)
			}
			return rows[0]
		}
		for _, set := range sample().Sets {
			for _, in := range set.Instances {
				r := row(in.Name)
				for _, want := range []string{string(in.State), string(in.Health), in.Digest[:19]} {
					if !strings.Contains(r, want) {
						t.Errorf("row of %s shows %q, want %q in it", in.Name, r, want)
					}
				}
			}
		}
		if r := row("web-2"); !strings.Contains(r, hostileReason) || !strings.Contains(r, "outdated") {
			t.Errorf("row of web-2 shows %q, want the reason as text and the instance outdated", r)
		}
		var injected struct {
			Pwned   any
			Scripts int
			Images  int
		}
		if err := p.Eval(ctx, `({pwned: window.__pwned ?? null, scripts: document.scripts.length, images: document.images.length})`, &injected); err != nil {
			t.Fatal(err)
		}
		if injected.Pwned != nil || injected.Scripts != 1 || injected.Images != 1 {
			t.Errorf("markup from the snapshot was run: %+v (want no __pwned, 1 script, 1 image)", injected)
		}
		if got := strings.Join(p.Text(ctx, ".upgrade"), ""); !strings.Contains(got, "Batch 2 of 3") || !strings.Contains(got, "waiting") {
			t.Errorf("the upgrade shows %q", got)
		}
		events := p.Text(ctx, "#event-log li")
		if len(events) != 5 || !strings.Contains(events[0], "unhealthy") || !strings.Contains(events[4], "capacity 2 → 3") {
			t.Errorf("the event log, newest first, shows %q", events)
		}
		testchromium.KeepScreenshot(t, "live-view.png", p.Screenshot(ctx, 1280))

		// The page is marked; if it were reloaded the mark would be gone.
		if err := p.Eval(ctx, `window.__notReloaded = true`, nil); err != nil {
			t.Fatal(err)
		}
		src.change(func(s *Snapshot) {
			in := &s.Sets[0].Instances[1]
			in.State, in.Health, in.HealthReason, in.LoadBalancer = deploy.Stopped, health.Unhealthy, "connect 8080: connection refused", OutLoadBalancer
			s.At = s.At.Add(time.Minute)
			s.Events = append(s.Events, Event{At: s.At, Set: "web", Instance: "web-1", Kind: EventHealth, Message: "web-1 stopped: taken out of the load balancer"})
		})
		p.WaitFor(ctx, "web-1 stopped", `document.querySelector('tr[data-instance="web-1"]').innerText.includes("stopped")`)
		if r := row("web-1"); !strings.Contains(r, "unhealthy") || !strings.Contains(r, "connection refused") || strings.Contains(r, "running") {
			t.Errorf("row of web-1 shows %q after it stopped", r)
		}
		var notReloaded bool
		if err := p.Eval(ctx, `window.__notReloaded === true`, &notReloaded); err != nil || !notReloaded {
			t.Errorf("the page was reloaded to show the change (%v)", err)
		}
		if events := p.Text(ctx, "#event-log li"); len(events) != 6 || !strings.Contains(events[0], "web-1 stopped") {
			t.Errorf("the event log, newest first, shows %q", events)
		}
		p.WaitFor(ctx, "the drawing again", `document.getElementById("drawing").src.endsWith("v=2") && document.getElementById("drawing").complete && document.getElementById("drawing").naturalWidth > 0`)
		testchromium.KeepScreenshot(t, "live-view-stopped.png", p.Screenshot(ctx, 1280))

		p.OnlyFrom(srv.URL)
		for _, pr := range p.Problems() {
			t.Errorf("the page complained: %s", pr)
		}
	})

	// Without a live stream (all taken, or a proxy that breaks them) the
	// page polls, and still follows the fleet.
	t.Run("polling", func(t *testing.T) {
		src := newFakeSource(sample())
		srv := httptest.NewServer(Handler(src, Options{MaxStreams: -1}))
		t.Cleanup(srv.Close)
		p := b.NewPage(ctx, t)
		p.Navigate(ctx, srv.URL+"/")
		p.WaitFor(ctx, "polling", `document.getElementById("status").innerText.startsWith("Polling")`)
		p.WaitFor(ctx, "web-0 running", `document.querySelector('tr[data-instance="web-0"]')?.innerText.includes("running")`)
		src.change(func(s *Snapshot) { s.Sets[0].Instances[0].State, s.Sets[0].Instances[0].Health = deploy.Stopped, "" })
		p.WaitFor(ctx, "web-0 stopped", `document.querySelector('tr[data-instance="web-0"]').innerText.includes("stopped")`)
		p.OnlyFrom(srv.URL)
		for _, pr := range p.Problems() {
			// The refused stream is the one error expected.
			if !strings.Contains(pr, "api/events") {
				t.Errorf("the page complained: %s", pr)
			}
		}
	})
}
