// Package epoch reads SOURCE_DATE_EPOCH (reproducible-builds.org): the one
// time every timestamp kiln writes is clamped to, so that the same inputs
// give the same bytes. It is kiln's only parser of that variable.
package epoch

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Var is the environment variable Parse's values come from.
const Var = "SOURCE_DATE_EPOCH"

// Default is the time used when SOURCE_DATE_EPOCH is unset or empty: the
// Unix epoch. Formats that cannot represent it (FAT starts in 1980) clamp it
// to their earliest date.
var Default = time.Unix(0, 0).UTC()

// Max is the last second a value may name: the end of year 9999, the last
// year ISO9660's 17-byte dates can hold.
var Max = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Parse reads a SOURCE_DATE_EPOCH value: decimal seconds since the Unix
// epoch, nothing else (no sign, no spaces, no fraction, no suffix).
func Parse(v string) (time.Time, error) {
	for _, c := range v {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("%s=%q: want whole seconds since 1970-01-01 UTC, digits only (e.g. $(git log -1 --format=%%ct))", Var, v)
		}
	}
	if v == "" {
		return time.Time{}, fmt.Errorf("%s is empty: want whole seconds since 1970-01-01 UTC", Var)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > Max.Unix() {
		return time.Time{}, fmt.Errorf("%s=%q is past %s", Var, v, Max.Format(time.DateOnly))
	}
	return time.Unix(n, 0).UTC(), nil
}

// FromEnv returns the time in $SOURCE_DATE_EPOCH, Default when it is unset
// or empty, and an error naming the variable when it is not a valid value:
// a build never silently falls back from a value it was given.
func FromEnv() (time.Time, error) {
	v, ok := os.LookupEnv(Var)
	if !ok || v == "" {
		return Default, nil
	}
	return Parse(v)
}

// Lookup is FromEnv for callers with a default of their own: the zero
// time when SOURCE_DATE_EPOCH is unset or empty.
func Lookup() (time.Time, error) {
	if v, ok := os.LookupEnv(Var); !ok || v == "" {
		return time.Time{}, nil
	}
	return FromEnv()
}

// Or returns t, or Default when t is zero: for options whose zero value
// means "no time given".
func Or(t time.Time) time.Time {
	if t.IsZero() {
		return Default
	}
	return t.UTC()
}
