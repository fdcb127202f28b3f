package boot

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCloudInitStatus reads the verdict from result.json as cloud-init
// writes it, and asks cloud-init itself only when something is wrong.
func TestCloudInitStatus(t *testing.T) {
	for _, tc := range []struct {
		name       string
		result     string
		code       int
		err        error
		wantStatus string
		wantCode   int
		wantErr    string
	}{
		{name: "done", result: `{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb]", "errors": []}}`, wantStatus: "done"},
		{name: "errors", result: `{"v1": {"errors": ["('scripts_user', RuntimeError('runparts: 1 failed'))"]}}`, wantStatus: "error", wantCode: 1},
		{name: "recoverable", result: `{"v1": {"errors": [], "recoverable_errors": {"WARNING": ["b", "a"], "DEPRECATED": ["c"]}}}`, wantStatus: "done", wantCode: 2},
		{name: "disabled", code: 3, wantStatus: "disabled", wantCode: 1, wantErr: "cloud-init is disabled"},
		{name: "never finished", err: context.DeadlineExceeded, wantStatus: "running", wantErr: "waiting for cloud-init to finish"},
		{name: "garbage", result: "{", wantErr: "not readable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked bool
			exec := func(ctx context.Context, script string) (string, int, error) {
				if strings.HasPrefix(script, "cloud-init status") {
					asked = true
					return "status: running", 0, nil
				}
				if script == stallProbe {
					asked = true
					b, err := os.ReadFile("testdata/stall/debian13-config-masked.txt")
					return string(b), 0, err
				}
				if strings.Contains(script, "cloud-init status") {
					t.Errorf("the wait starts cloud-init (Python) in the guest: %s", script)
				}
				return tc.result, tc.code, tc.err
			}
			st, err := WaitCloudInit(context.Background(), exec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				if !asked && tc.name != "garbage" {
					t.Error("cloud-init status was not asked for the error message")
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Errorf("the cause is lost: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.Status != tc.wantStatus || st.ExitCode != tc.wantCode {
				t.Errorf("got %q/%d, want %q/%d", st.Status, st.ExitCode, tc.wantStatus, tc.wantCode)
			}
			if tc.name == "recoverable" && strings.Join(st.Warnings, "|") != "DEPRECATED: c|WARNING: b|WARNING: a" {
				t.Errorf("warnings: %q", st.Warnings)
			}
			// A stall names its stage in the error and in the state.
			if tc.name == "never finished" {
				const want = `context deadline exceeded; cloud-init stage "modules-config" (cloud-config.service) never ran: the unit is masked`
				if !strings.Contains(err.Error(), want) || st.Stage != "modules-config" || st.Diagnosis == "" || !strings.Contains(st.Evidence, "units:") {
					t.Errorf("stall: error %v; state %+v", err, st)
				}
			}
		})
	}
}

// A stall the guest cannot explain still says what it could learn.
func TestCloudInitStallUnexplained(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		err       error
		want      string
	}{
		{name: "unreadable answer", out: "sh: 1: systemctl: not found\n", want: "context deadline exceeded; the guest says:\nsh: 1: systemctl: not found"},
		{name: "no answer", err: errors.New("ssh: connection lost"), want: "context deadline exceeded (the guest did not say where cloud-init stands: ssh: connection lost)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec := func(ctx context.Context, script string) (string, int, error) {
				if script == stallProbe {
					return tc.out, 0, tc.err
				}
				return "", -1, context.DeadlineExceeded
			}
			_, err := WaitCloudInit(context.Background(), exec)
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Errorf("error %v, want it to end %q", err, tc.want)
			}
		})
	}
}
