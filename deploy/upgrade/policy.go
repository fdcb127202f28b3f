package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/fielderr"
)

// Mode is when instances take a set's new image.
type Mode string

// The upgrade modes, spelt as Azure spells them.
const (
	// Manual: instances keep their image until named in
	// `kiln deploy upgrade SET --instances a,b`; those are reimaged at once.
	Manual Mode = "Manual"
	// Automatic: every instance is reimaged at once, with no health gate
	// (an availability set still walks its update domains).
	Automatic Mode = "Automatic"
	// Rolling: batches behind health checks, by the rolling policy.
	Rolling Mode = "Rolling"
)

// Defaults and limits of a Policy. The percentages' bounds are Azure's;
// MaxPause is kiln's (Azure sets none).
const (
	DefaultMaxBatchInstancePercent             = 20
	DefaultMaxUnhealthyInstancePercent         = 20
	DefaultMaxUnhealthyUpgradedInstancePercent = 20
	MinBatchInstancePercent                    = 5
	MinUnhealthyInstancePercent                = 5
	MaxPause                                   = time.Hour
)

// Policy is a set's upgrade policy: the fleet file's upgradePolicy, with
// the rollingUpgradePolicy's fields flattened. The percentages are of the
// set's capacity, except MaxUnhealthyUpgradedInstancePercent, which is of
// the instances that run the target image (doc.go).
type Policy struct {
	Mode Mode `json:"mode"`
	// MaxBatchInstancePercent bounds a batch: max(1, capacity × % / 100)
	// instances, rounded down.
	MaxBatchInstancePercent int `json:"maxBatchInstancePercent"`
	// MaxUnhealthyInstancePercent is checked before each batch: more
	// unhealthy instances than that stop the upgrade, and a batch shrinks
	// so that the instances it takes down keep within it.
	MaxUnhealthyInstancePercent int `json:"maxUnhealthyInstancePercent"`
	// MaxUnhealthyUpgradedInstancePercent is checked after each batch:
	// more of the upgraded instances unhealthy than that stop the upgrade.
	MaxUnhealthyUpgradedInstancePercent int `json:"maxUnhealthyUpgradedInstancePercent"`
	// PauseTimeBetweenBatches is waited after a batch has finished.
	PauseTimeBetweenBatches time.Duration `json:"pauseTimeBetweenBatches"`
	// PrioritizeUnhealthyInstances upgrades unhealthy instances first.
	PrioritizeUnhealthyInstances bool `json:"prioritizeUnhealthyInstances"`
	// MaxSurge makes a batch's new instances before its old ones go.
	MaxSurge bool `json:"maxSurge"`
}

// Default fills the unset (zero) fields: Mode Manual, the three
// percentages 20. It is pure; it does not validate.
//
// A zero maxUnhealthyUpgradedInstancePercent is a real value (stop at the
// first upgraded instance found unhealthy), so a loader that reads a file
// calls Default on an empty Policy first and writes the file's values over
// it; calling Default after would take a written 0 for unset.
func Default(p *Policy) {
	if p.Mode == "" {
		p.Mode = Manual
	}
	if p.MaxBatchInstancePercent == 0 {
		p.MaxBatchInstancePercent = DefaultMaxBatchInstancePercent
	}
	if p.MaxUnhealthyInstancePercent == 0 {
		p.MaxUnhealthyInstancePercent = DefaultMaxUnhealthyInstancePercent
	}
	if p.MaxUnhealthyUpgradedInstancePercent == 0 {
		p.MaxUnhealthyUpgradedInstancePercent = DefaultMaxUnhealthyUpgradedInstancePercent
	}
}

// Field paths of a Policy in a set of the fleet file (doc.go).
const (
	fieldMode      = "upgradePolicy.mode"
	fieldRolling   = "upgradePolicy.rollingUpgradePolicy."
	fieldBatch     = fieldRolling + "maxBatchInstancePercent"
	fieldUnhealthy = fieldRolling + "maxUnhealthyInstancePercent"
	fieldUpgraded  = fieldRolling + "maxUnhealthyUpgradedInstancePercent"
	fieldPause     = fieldRolling + "pauseTimeBetweenBatches"
)

// FieldError is one problem of a Policy or of Options, at a field path such
// as "upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent"; the
// fleet loader places it at the field's file:line:col.
type FieldError = fielderr.Error

// Validate checks a defaulted Policy and returns every problem, each a
// *FieldError, joined; nil when there is none. The rolling fields are
// checked whatever the mode, so a policy switched to Rolling later is
// already sound.
func Validate(p Policy) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch p.Mode {
	case Manual, Automatic, Rolling:
	default:
		if m := fold(p.Mode); m != "" {
			bad(fieldMode, "unknown mode %q (did you mean %s?)", p.Mode, m)
		} else {
			bad(fieldMode, "unknown mode %q (want Manual, Automatic or Rolling)", p.Mode)
		}
	}
	batchOK := p.MaxBatchInstancePercent >= MinBatchInstancePercent && p.MaxBatchInstancePercent <= 100
	if !batchOK {
		bad(fieldBatch, "maxBatchInstancePercent must be %d-100, got %d", MinBatchInstancePercent, p.MaxBatchInstancePercent)
	}
	if v := p.MaxUnhealthyInstancePercent; v < MinUnhealthyInstancePercent || v > 100 {
		bad(fieldUnhealthy, "maxUnhealthyInstancePercent must be %d-100, got %d", MinUnhealthyInstancePercent, v)
	} else if batchOK && p.MaxBatchInstancePercent > v {
		// Azure's rule: a batch is taken down as a whole, so one larger
		// than the unhealthy allowance would breach it by itself.
		bad(fieldBatch, "maxBatchInstancePercent %d is above maxUnhealthyInstancePercent %d: a batch that large would breach it by itself (raise maxUnhealthyInstancePercent or lower maxBatchInstancePercent)", p.MaxBatchInstancePercent, v)
	}
	if v := p.MaxUnhealthyUpgradedInstancePercent; v < 0 || v > 100 {
		bad(fieldUpgraded, "maxUnhealthyUpgradedInstancePercent must be 0-100, got %d", v)
	}
	if v := p.PauseTimeBetweenBatches; v < 0 || v > MaxPause {
		bad(fieldPause, "pauseTimeBetweenBatches must be 0-%s, got %s", MaxPause, v)
	}
	return errors.Join(errs...)
}

// fold is the mode m names in another case ("rolling"), or "".
func fold(m Mode) Mode {
	for _, k := range []Mode{Manual, Automatic, Rolling} {
		if strings.EqualFold(string(m), string(k)) {
			return k
		}
	}
	return ""
}

// MarshalJSON writes the policy with camelCase keys and the pause as a
// duration string ("30s"), as every JSON kiln writes.
func (p Policy) MarshalJSON() ([]byte, error) {
	type plain Policy
	return json.Marshal(struct {
		plain
		Pause string `json:"pauseTimeBetweenBatches"`
	}{plain(p), formatDuration(p.PauseTimeBetweenBatches)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Policy) UnmarshalJSON(b []byte) error {
	type plain Policy
	var w struct {
		plain
		Pause string `json:"pauseTimeBetweenBatches"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d, err := parseDuration(w.Pause)
	if err != nil {
		return fmt.Errorf("pauseTimeBetweenBatches: %w", err)
	}
	*p = Policy(w.plain)
	p.PauseTimeBetweenBatches = d
	return nil
}

// formatDuration is the shortest form time.ParseDuration reads back: "2m"
// rather than "2m0s". (manifest.Duration does the same; this package may
// import only the standard library.)
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
