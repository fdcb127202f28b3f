package recipes

import (
	"regexp"
	"sync"
)

// lazyRegexp is a regular expression compiled on first use. Every kiln
// command loads this package, and most need few of its expressions:
// compiling them all at start-up cost more than the rest of `kiln version`.
type lazyRegexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

// lazyRegexps lists every expression, so a test compiles them all.
var lazyRegexps []*lazyRegexp

func lazyRE(expr string) *lazyRegexp {
	l := &lazyRegexp{expr: expr}
	lazyRegexps = append(lazyRegexps, l)
	return l
}

func (l *lazyRegexp) MatchString(s string) bool {
	l.once.Do(func() { l.re = regexp.MustCompile(l.expr) })
	return l.re.MatchString(s)
}
