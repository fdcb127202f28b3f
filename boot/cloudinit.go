package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Exec runs a shell command as root in a guest.
type Exec func(ctx context.Context, shell string) (output string, exitCode int, err error)

// CloudInitState is what cloud-init reported in the guest.
type CloudInitState struct {
	Status   string   `json:"status"`   // done, error, disabled; running, not started when it never finished
	ExitCode int      `json:"exitCode"` // of cloud-init status: 0 ok, 1 error, 2 recoverable error
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`

	// When cloud-init never finished: the stage it was in or waiting for
	// (status.json's names: init-local, init, modules-config,
	// modules-final), and one line naming what held it up.
	Stage     string `json:"stage,omitempty"`
	Diagnosis string `json:"diagnosis,omitempty"`
	// Evidence is what the guest said when cloud-init never finished:
	// cloud-init status, its stages, the stage units' states and systemd's
	// job queue. Reports carry it as their diagnostics.
	Evidence string `json:"-"`
}

// WaitCloudInit waits for cloud-init in the guest to finish and reads its
// verdict from result.json, which cloud-init writes when its last stage is
// done. A shell loop waits for it: `cloud-init status --wait` would start a
// Python process that competes with cloud-init's own stages for a small
// VM's CPU while it boots. Status and exit code mean what `cloud-init
// status` reports: done (0), done with recoverable errors (2), error (1).
//
// When ctx ends first, kiln asks the guest where cloud-init stands — its
// status, its stage units, systemd's jobs — and the error and the state
// name the stage still running or waiting, and what holds it up.
func WaitCloudInit(ctx context.Context, exec Exec) (CloudInitState, error) {
	const wait = `while [ ! -s /run/cloud-init/result.json ]; do
	if [ -e /etc/cloud/cloud-init.disabled ] || [ -e /run/cloud-init/disabled ]; then exit 3; fi
	sleep 0.5
done
cat /run/cloud-init/result.json`
	out, code, err := exec(ctx, wait)
	if err != nil || code == 3 {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if code == 3 && err == nil {
			status, _, _ := exec(sctx, "cloud-init status --long 2>&1 | head -n 12")
			return CloudInitState{Status: "disabled", ExitCode: 1}, fmt.Errorf("cloud-init is disabled in the guest: %s", strings.TrimSpace(status))
		}
		// Say where cloud-init stands: the stage still running or waiting,
		// from cloud-init's own view and its units'.
		probe, _, perr := exec(sctx, stallProbe)
		st := stallState(probe)
		switch {
		case st.Diagnosis != "":
			return st, fmt.Errorf("waiting for cloud-init to finish: %w; %s", err, st.Diagnosis)
		case strings.TrimSpace(probe) != "" && perr == nil:
			st.Evidence = strings.TrimSpace(probe)
			return st, fmt.Errorf("waiting for cloud-init to finish: %w; the guest says:\n%s", err, firstLines(st.Evidence, 12))
		}
		return st, fmt.Errorf("waiting for cloud-init to finish: %w (the guest did not say where cloud-init stands: %v)", err, perr)
	}
	res, err := ParseCloudInitResult([]byte(out))
	if err != nil {
		if len(out) > 200 {
			out = out[:200] + "..."
		}
		return CloudInitState{}, fmt.Errorf("%v: %q", err, out)
	}
	st := CloudInitState{Status: "done", Errors: res.Errors, Warnings: res.Warnings}
	switch {
	case len(st.Errors) > 0:
		st.Status, st.ExitCode = "error", 1
	case len(st.Warnings) > 0:
		st.ExitCode = 2
	}
	return st, nil
}

// CloudInitResult is cloud-init's verdict on a boot, from result.json.
type CloudInitResult struct {
	Errors   []string
	Warnings []string // recoverable errors, "LEVEL: message", sorted by level
}

// ParseCloudInitResult reads cloud-init's result.json.
func ParseCloudInitResult(b []byte) (CloudInitResult, error) {
	var r struct {
		V1 struct {
			Errors            []string            `json:"errors"`
			RecoverableErrors map[string][]string `json:"recoverable_errors"`
		} `json:"v1"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return CloudInitResult{}, fmt.Errorf("cloud-init's result.json is not readable: %v", err)
	}
	res := CloudInitResult{Errors: r.V1.Errors}
	for _, level := range slices.Sorted(maps.Keys(r.V1.RecoverableErrors)) {
		for _, m := range r.V1.RecoverableErrors[level] {
			res.Warnings = append(res.Warnings, level+": "+m)
		}
	}
	return res, nil
}
