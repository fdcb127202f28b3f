// Package lazyre holds regular expressions compiled on first use. Every
// kiln command links most of kiln, and each needs few of its expressions:
// compiling them all at start-up cost more than the rest of `kiln version`.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled the first time it is used.
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

var (
	mu  sync.Mutex
	all []*Regexp
)

// New returns expr, to be compiled on first use. A bad expression panics
// then, as regexp.MustCompile would at start-up: All lets a test compile
// every one.
func New(expr string) *Regexp {
	l := &Regexp{expr: expr}
	mu.Lock()
	all = append(all, l)
	mu.Unlock()
	return l
}

// All returns every expression made by New so far: those of every package
// the program links, once their variables are initialised.
func All() []*Regexp {
	mu.Lock()
	defer mu.Unlock()
	return append([]*Regexp(nil), all...)
}

// String is the expression.
func (l *Regexp) String() string { return l.expr }

// RE is the compiled expression.
func (l *Regexp) RE() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.expr) })
	return l.re
}

// MatchString reports whether s matches.
func (l *Regexp) MatchString(s string) bool { return l.RE().MatchString(s) }

// FindStringSubmatch is regexp.Regexp's.
func (l *Regexp) FindStringSubmatch(s string) []string { return l.RE().FindStringSubmatch(s) }

// FindAllStringSubmatch is regexp.Regexp's.
func (l *Regexp) FindAllStringSubmatch(s string, n int) [][]string {
	return l.RE().FindAllStringSubmatch(s, n)
}
