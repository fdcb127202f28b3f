package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/repair"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/internal/atomicfile"
)

// stateVersion is the version of state.json this kiln writes and reads.
const stateVersion = 1

// State is what the controller keeps between ticks and across restarts, in
// StateDir/state.json: written (temp file, fsync, rename) after every
// decision and before acting on it, so a controller killed at any point
// starts again from the last decision and does what is left.
type State struct {
	SchemaVersion int                  `json:"schemaVersion"`
	Sets          map[string]*SetState `json:"sets"`
}

// SetState is one set's part of State.
type SetState struct {
	// Health is each instance's health, by name; an instance that is not
	// running has none, and starts over when it runs again.
	Health map[string]health.State `json:"health,omitempty"`
	// Incarnation is what each instance's health belongs to (its image
	// and spec): an instance made again under the same name starts over.
	Incarnation map[string]string `json:"incarnation,omitempty"`
	// Repairs is the repair history deploy/repair decides from; Resumed is
	// when `kiln deploy repair --resume` last lifted a suspension.
	Repairs   []repair.Repair `json:"repairs,omitempty"`
	Resumed   time.Time       `json:"resumed,omitzero"`
	Repairing string          `json:"repairing,omitempty"` // the last suspension reported
	// Upgrade is the upgrade under way (or stopped); Last the one before,
	// for --rollback.
	Upgrade *upgrade.Upgrade `json:"upgrade,omitempty"`
	Last    *upgrade.Upgrade `json:"last,omitempty"`
	// SurgeOf marks surge instances with the upgrade that made them.
	SurgeOf map[string]string `json:"surgeOf,omitempty"`
	// Autoscale: when the profile last scaled, when it is evaluated next,
	// the metric series it evaluates, and each instance's last CPU reading.
	LastScale    time.Time                   `json:"lastScale,omitzero"`
	NextEvaluate time.Time                   `json:"nextEvaluate,omitzero"`
	Metrics      map[string]autoscale.Series `json:"metrics,omitempty"`
	CPU          map[string]cpuReading       `json:"cpu,omitempty"`
	Decision     string                      `json:"decision,omitempty"` // the last autoscale decision, for people
	// Sources are where each image digest the set ran came from (the
	// pinned registry reference or the file): what --rollback writes back.
	Sources map[string]string `json:"sources,omitempty"`
}

// PreviousImage is where the image before the set's last upgrade came
// from, as the controller recorded it: what `kiln deploy upgrade
// --rollback` writes back into the fleet file.
func PreviousImage(stateDir, set string) (string, error) {
	s, err := loadState(stateDir)
	if err != nil {
		return "", err
	}
	st := s.Sets[set]
	if st == nil {
		return "", fmt.Errorf("no controller has run set %s yet (no state in %s)", set, stateDir)
	}
	u := st.Upgrade
	if u == nil {
		u = st.Last
	}
	if u == nil || u.Previous == "" {
		return "", fmt.Errorf("set %s has no upgrade to roll back", set)
	}
	src := st.Sources[u.Previous]
	if src == "" {
		return "", fmt.Errorf("set %s: where image %s came from was not recorded; write its image into the fleet file by hand", set, u.Previous)
	}
	return src, nil
}

// CollectedMetrics are the metric series a controller collected for a set,
// and when its autoscale last acted: what `kiln deploy autoscale --dry-run`
// decides from.
func CollectedMetrics(stateDir, set string) (map[string]autoscale.Series, time.Time, error) {
	s, err := loadState(stateDir)
	if err != nil {
		return nil, time.Time{}, err
	}
	st := s.Sets[set]
	if st == nil || len(st.Metrics) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics collected for set %s yet: kiln deploy run collects them (state in %s)", set, stateDir)
	}
	return st.Metrics, st.LastScale, nil
}

type cpuReading struct {
	At      time.Time     `json:"at"`
	CPUTime time.Duration `json:"cpuTime"`
}

func newState() *State { return &State{SchemaVersion: stateVersion, Sets: map[string]*SetState{}} }

// set returns the set's state, made empty the first time.
func (s *State) set(name string) *SetState {
	st := s.Sets[name]
	if st == nil {
		st = &SetState{}
		s.Sets[name] = st
	}
	if st.Health == nil {
		st.Health = map[string]health.State{}
	}
	if st.Incarnation == nil {
		st.Incarnation = map[string]string{}
	}
	if st.SurgeOf == nil {
		st.SurgeOf = map[string]string{}
	}
	if st.Metrics == nil {
		st.Metrics = map[string]autoscale.Series{}
	}
	if st.CPU == nil {
		st.CPU = map[string]cpuReading{}
	}
	if st.Sources == nil {
		st.Sources = map[string]string{}
	}
	return st
}

const stateFile = "state.json"

// maxStateSize bounds state.json: a few sets of at most 100 instances, and
// metric series bounded by their windows.
const maxStateSize = 64 << 20

// loadState reads dir's state.json; a missing one is an empty state.
func loadState(dir string) (*State, error) {
	path := filepath.Join(dir, stateFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxStateSize {
		return nil, fmt.Errorf("%s is %d bytes, more than a controller ever writes: not kiln's state; move it away", path, st.Size())
	}
	var s State
	dec := json.NewDecoder(f)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w (not kiln's state? move it away and the controller starts afresh)", path, err)
	}
	if s.SchemaVersion != stateVersion {
		return nil, fmt.Errorf("%s has version %d; this kiln reads %d", path, s.SchemaVersion, stateVersion)
	}
	if s.Sets == nil {
		s.Sets = map[string]*SetState{}
	}
	return &s, nil
}

// save writes the state: private (it names instances and their addresses),
// atomically.
func (s *State) save(dir string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(data, '\n'), 0o600)
}
