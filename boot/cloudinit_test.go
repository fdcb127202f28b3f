package boot

import (
	"context"
	"errors"
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
		{name: "never finished", err: context.DeadlineExceeded, wantErr: "waiting for cloud-init to finish"},
		{name: "garbage", result: "{", wantErr: "not readable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked bool
			exec := func(ctx context.Context, script string) (string, int, error) {
				if strings.HasPrefix(script, "cloud-init status") {
					asked = true
					return "status: running", 0, nil
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
		})
	}
}
