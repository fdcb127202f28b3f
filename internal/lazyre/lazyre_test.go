package lazyre

import (
	"regexp"
	"testing"
)

func TestLazy(t *testing.T) {
	r := New(`^[a-z]+-[0-9]$`)
	if r.re != nil {
		t.Fatal("compiled before use")
	}
	if !r.MatchString("web-1") || r.MatchString("web") {
		t.Error("wrong matches")
	}
	if m := r.FindStringSubmatch("db-2"); len(m) != 1 {
		t.Errorf("%q", m)
	}
	found := false
	for _, l := range All() {
		found = found || l == r
		if _, err := regexp.Compile(l.String()); err != nil {
			t.Errorf("%q: %v", l, err)
		}
	}
	if !found {
		t.Error("All lacks the expression")
	}
}
