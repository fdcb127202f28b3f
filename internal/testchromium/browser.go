package testchromium

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Browser is one headless Chromium process, started by [Start].
type Browser struct {
	t      testing.TB
	cmd    *exec.Cmd
	in     *os.File     // our end of Chromium's fd 3
	stderr bytes.Buffer // read once Chromium has exited

	wmu     sync.Mutex // one message at a time on the pipe
	mu      sync.Mutex
	next    int
	waiting map[int]chan message
	events  []message     // of the methods in kept only
	done    chan struct{} // closed when the pipe from Chromium ends
}

// kept are the events pages read; the others (one per chunk received, per
// server-sent event, ...) are dropped so a long test does not pile them up.
var kept = map[string]bool{
	"Runtime.exceptionThrown":   true,
	"Runtime.consoleAPICalled":  true,
	"Log.entryAdded":            true,
	"Network.requestWillBeSent": true,
	"Network.loadingFailed":     true,
}

type message struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Start starts Chromium with a profile of its own in a temporary directory
// and a 1280×900 window. It may reach loopback only: host names resolve to
// nothing and every other address goes to a proxy that is not there. It is
// closed, and killed by its process group if it does not quit, when t ends.
// Without chromium, t is skipped (failed under CI=true).
func Start(t testing.TB) *Browser {
	t.Helper()
	bin := testutil.NeedTool(t, "chromium")
	profile := t.TempDir()
	cmdIn, ourIn, err := os.Pipe() // Chromium reads fd 3
	if err != nil {
		t.Fatal(err)
	}
	ourOut, cmdOut, err := os.Pipe() // Chromium writes fd 4
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{t: t, in: ourIn, waiting: map[int]chan message{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin,
		"--headless", "--remote-debugging-pipe", "--user-data-dir="+profile,
		"--no-sandbox", // the tests run as root
		"--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--disable-breakpad", "--metrics-recording-only",
		"--mute-audio", "--hide-scrollbars", "--force-color-profile=srgb", "--lang=en-US",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--proxy-server=127.0.0.1:9", // loopback is never proxied
		"--window-size=1280,900",
		"about:blank")
	b.cmd.Env = append(os.Environ(), "TZ=UTC")
	b.cmd.ExtraFiles = []*os.File{cmdIn, cmdOut}
	b.cmd.Stderr = &b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its renderers and helpers go with it
	if err := b.cmd.Start(); err != nil {
		ourIn.Close()
		ourOut.Close()
		cmdIn.Close()
		cmdOut.Close()
		t.Fatalf("starting chromium: %v", err)
	}
	cmdIn.Close()
	cmdOut.Close()
	t.Logf("chromium started, pid %d, profile %s", b.cmd.Process.Pid, profile)
	go b.read(ourOut)
	t.Cleanup(b.close)
	return b
}

func (b *Browser) read(r *os.File) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m message
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if ch, ok := b.waiting[m.ID]; ok && m.Method == "" {
			delete(b.waiting, m.ID)
			ch <- m
		} else if kept[m.Method] {
			b.events = append(b.events, m)
		}
		b.mu.Unlock()
	}
}

// close asks Chromium to quit, and kills its process group if it has not
// within ten seconds.
func (b *Browser) close() {
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _ = b.call(ctx, "", "Browser.close", nil)
	cancel()
	b.in.Close()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		b.t.Logf("chromium (pid %d) did not quit: killing its process group", b.cmd.Process.Pid)
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// Helpers that outlived the browser (they should not) go too.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	if b.t.Failed() {
		b.t.Logf("chromium's stderr:\n%s", b.stderr.String())
	}
}

// call sends one command (to the browser, or to a page's session) and
// returns its result.
func (b *Browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan message, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	b.wmu.Lock()
	_, err = b.in.Write(append(raw, 0))
	b.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-b.done:
		return nil, fmt.Errorf("%s: chromium exited", method)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}
