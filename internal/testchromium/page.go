package testchromium

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Page is one tab, attached in flat mode (its commands carry its
// session), used by one test.
type Page struct {
	t         testing.TB
	b         *Browser
	target    string
	session   string
	closeOnce sync.Once
}

// NewPage opens a blank tab and turns on the events a page reports:
// console messages, exceptions, log entries and network requests. The tab
// is closed when t ends, or before by [Page.Close]. A server the page
// streams from should be registered with t.Cleanup before NewPage
// (cleanups run last first): a server that waits for its streams to end
// on shutdown then finds the tab gone.
func (b *Browser) NewPage(ctx context.Context, t testing.TB) *Page {
	t.Helper()
	var created struct{ TargetID string }
	must(t)(b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}))(&created)
	var attached struct{ SessionID string }
	must(t)(b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}))(&attached)
	p := &Page{t: t, b: b, target: created.TargetID, session: attached.SessionID}
	t.Cleanup(p.Close)
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Network.enable", "Log.enable"} {
		p.call(ctx, domain, nil)
	}
	return p
}

// Close closes the tab, ending its connections (a live stream among
// them). It may be called more than once; [Browser.NewPage] makes it a
// cleanup of the test.
func (p *Page) Close() {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target}); err != nil {
			p.t.Errorf("closing the page: %v", err)
		}
	})
}

// must(t)(result, err)(&v) fails the test on err, or decodes the result
// into v.
func must(t testing.TB) func(json.RawMessage, error) func(v any) {
	return func(result json.RawMessage, err error) func(v any) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return func(v any) {
			t.Helper()
			if err := json.Unmarshal(result, v); err != nil {
				t.Fatalf("decoding %s: %v", result, err)
			}
		}
	}
}

func (p *Page) call(ctx context.Context, method string, params any) json.RawMessage {
	p.t.Helper()
	r, err := p.b.call(ctx, p.session, method, params)
	if err != nil {
		p.t.Fatal(err)
	}
	return r
}

// Navigate loads url in the page and fails the test if it cannot be
// loaded. It returns once the navigation is committed, not when the page
// has loaded: wait for what it should show with [Page.WaitFor].
func (p *Page) Navigate(ctx context.Context, url string) {
	p.t.Helper()
	var r struct{ ErrorText string }
	must(p.t)(p.b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}))(&r)
	if r.ErrorText != "" {
		p.t.Fatalf("navigating to %s: %s", url, r.ErrorText)
	}
}

// Eval runs a JavaScript expression in the page (awaiting it if it is a
// promise) and decodes its value, as JSON, into v (nil: ignore it). An
// exception thrown is an error.
func (p *Page) Eval(ctx context.Context, expr string, v any) error {
	raw, err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var r struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if v == nil || r.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, v)
}

// Text is the text a person sees in the elements the CSS selector finds
// (innerText: laid out, hidden elements left out), one string each, in
// document order; none when nothing matches.
func (p *Page) Text(ctx context.Context, selector string) []string {
	p.t.Helper()
	var out []string
	sel, _ := json.Marshal(selector)
	if err := p.Eval(ctx, fmt.Sprintf("Array.from(document.querySelectorAll(%s), e => e.innerText)", sel), &out); err != nil {
		p.t.Fatal(err)
	}
	return out
}

// WaitFor evaluates a boolean JavaScript expression every 100ms until it
// is true, and fails the test, with what the page shows, if it is not
// before ctx ends. what names the wait in that message. An exception (an
// element not there yet) counts as false, so the expression may assume
// the page is as it will be.
func (p *Page) WaitFor(ctx context.Context, what, expr string) {
	p.t.Helper()
	for {
		var ok bool
		err := p.Eval(ctx, expr, &ok)
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			var body string
			bodyCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = p.Eval(bodyCtx, "document.body.innerText", &body)
			cancel()
			p.t.Fatalf("waiting for %s: %v (last error: %v); the page shows:\n%s", what, ctx.Err(), err, body)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Screenshot is a PNG of the whole page, width pixels wide and as tall as
// its content (300 to 8000 pixels). The page keeps that viewport after.
func (p *Page) Screenshot(ctx context.Context, width int) []byte {
	p.t.Helper()
	var height int
	if err := p.Eval(ctx, "Math.ceil(document.documentElement.scrollHeight)", &height); err != nil {
		p.t.Fatal(err)
	}
	p.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": min(max(height, 300), 8000), "deviceScaleFactor": 1, "mobile": false})
	var shot struct{ Data string }
	must(p.t)(p.b.call(ctx, p.session, "Page.captureScreenshot", map[string]any{"format": "png"}))(&shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	return png
}

// Problems are what the page complained of so far: uncaught exceptions,
// console errors (a Content-Security-Policy violation is one) and log
// entries of level error (a resource that failed to load is one), one
// line each.
func (p *Page) Problems() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	var out []string
	for _, e := range p.b.events {
		if e.SessionID != p.session {
			continue
		}
		switch e.Method {
		case "Runtime.exceptionThrown":
			out = append(out, "exception: "+string(e.Params))
		case "Runtime.consoleAPICalled":
			var c struct{ Type string }
			if json.Unmarshal(e.Params, &c) == nil && c.Type == "error" {
				out = append(out, "console: "+string(e.Params))
			}
		case "Log.entryAdded":
			var l struct {
				Entry struct{ Level, Text, URL string }
			}
			if json.Unmarshal(e.Params, &l) == nil && l.Entry.Level == "error" {
				out = append(out, fmt.Sprintf("log: %s (%s)", l.Entry.Text, l.Entry.URL))
			}
		}
	}
	return out
}

// Requests are the URLs the page asked for so far, refused ones included,
// in order.
func (p *Page) Requests() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	var out []string
	for _, e := range p.b.events {
		if e.SessionID != p.session || e.Method != "Network.requestWillBeSent" {
			continue
		}
		var r struct{ Request struct{ URL string } }
		if json.Unmarshal(e.Params, &r) == nil {
			out = append(out, r.Request.URL)
		}
	}
	return out
}

// OnlyFrom fails the test (without stopping it) for every request so far
// outside base, a URL such as "http://127.0.0.1:PORT" without a final
// slash; about:blank is allowed.
func (p *Page) OnlyFrom(base string) {
	p.t.Helper()
	for _, u := range p.Requests() {
		if u != "about:blank" && !strings.HasPrefix(u, base+"/") {
			p.t.Errorf("the page asked for %s, outside %s", u, base)
		}
	}
}
