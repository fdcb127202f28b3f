package builder

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
)

// TestBakeVerdict reads the outcome of a VM bake from consoles like the
// ones guests print.
func TestBakeVerdict(t *testing.T) {
	const ok = `KILN-BAKE-RESULT {"v1": {"datasource": "DataSourceNoCloud", "errors": []}}` + "\nKILN-BAKE-CLEAN\n"
	for _, tc := range []struct {
		name     string
		console  string
		timedOut bool
		waitErr  error
		want     string // "" = success
		warn     string
	}{
		{name: "clean", console: ok},
		{name: "never reported", console: "Booting\n", timedOut: true, want: "cloud-init never reported"},
		{name: "died before reporting", console: "Kernel panic\n", waitErr: errors.New("exit 1"), want: "stopped before cloud-init reported"},
		{name: "cloud-init errors", console: `KILN-BAKE-RESULT {"v1": {"errors": ["('scripts_user', RuntimeError('oops'))"]}}` + "\n",
			want: "failed to apply the bake section:\n    ('scripts_user'"},
		{name: "recoverable", console: `KILN-BAKE-RESULT {"v1": {"errors": [], "recoverable_errors": {"WARNING": ["deprecated key"]}}}` + "\nKILN-BAKE-CLEAN\n",
			warn: "recoverable WARNING: deprecated key"},
		{name: "unreadable result", console: "KILN-BAKE-RESULT {not json}\n", want: "not readable"},
		{name: "no cleanup", console: `KILN-BAKE-RESULT {"v1": {"errors": []}}` + "\n", want: "did not finish cleaning"},
		{name: "no power-off", console: ok, waitErr: fmt.Errorf("%w within 2m", errNoPowerOff), want: "cleaned itself but did not power off"},
		{name: "timeout after cleaning", console: ok, timedOut: true, want: "did not power off within 30m"},
		{name: "last result wins", console: `KILN-BAKE-RESULT {"v1": {"errors": ["old"]}}` + "\n" + ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var warns []string
			step := progress.Begin(progress.Func(func(e progress.Event) {
				if e.Kind == progress.Warn {
					mu.Lock()
					warns = append(warns, e.Msg)
					mu.Unlock()
				}
			}), "vm-bake", 0, "")
			err := bakeVerdict(tc.console, step, tc.timedOut, tc.waitErr, 30*time.Minute)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(warns, "\n"), tc.warn) {
				t.Errorf("want a warning %q, got %q", tc.warn, warns)
			}
		})
	}
}
