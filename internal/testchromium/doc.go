// Package testchromium drives a headless Chromium from kiln's tests, so a
// test can load a page kiln serves (the live view of deploy/view, served by
// a fake source or by a real `kiln deploy run --serve`) and check what a
// person sees. kiln itself never uses it.
//
// It speaks the Chrome DevTools Protocol on a pipe
// (--remote-debugging-pipe: commands on Chromium's fd 3, answers and events
// on its fd 4, each message JSON ended by a NUL byte), so no DevTools port
// is opened and no client library is needed.
//
//	test ──► Browser (one chromium process group, temporary profile)
//	           └─► Page (one tab, a flat-mode session) ──► http://127.0.0.1:PORT/
//
// The browser reaches loopback only: host names resolve to nothing (use
// http://127.0.0.1:PORT, not localhost) and every other address goes to a
// proxy that is not there. Its profile lives in the test's temporary
// directory; it is closed, and its process group killed if it does not
// quit, when the test that started it ends.
//
// A test calls testutil.Integration first (so -short skips it), then
// [Start]: a missing chromium is a skip on a laptop and a failure under
// CI=true (testutil.NeedTool). Pages come from [Browser.NewPage], one per
// (sub)test. The methods that fail the test (everything but
// [Page.Eval], [Page.Problems] and [Page.Requests]) must be called from the
// test's goroutine.
//
// A page that updates itself (server-sent events, polling) is followed
// with [Page.WaitFor] and an expression that tolerates the element not
// being there yet, under a context that bounds the wait:
//
//	p.WaitFor(ctx, "web-1 stopped", `document.querySelector('tr[data-instance="web-1"]')?.innerText.includes("stopped")`)
//
// At the end, [Page.OnlyFrom] fails the test for any request outside the
// server, and [Page.Problems] lists what the page complained of (uncaught
// exceptions, console errors, Content-Security-Policy violations, failed
// loads).
package testchromium
