package recipes

import (
	"regexp"
	"testing"
)

// TestLazyRegexps: expressions compiled on first use would otherwise fail
// only when a recipe first reaches them.
func TestLazyRegexps(t *testing.T) {
	if len(lazyRegexps) == 0 {
		t.Fatal("no lazy expressions registered")
	}
	for _, l := range lazyRegexps {
		if _, err := regexp.Compile(l.expr); err != nil {
			t.Errorf("%q: %v", l.expr, err)
		}
	}
	if !nameRE.MatchString("web-1") || nameRE.MatchString("-web") {
		t.Error("nameRE matches wrongly")
	}
}
