// Command testsum reads `go test -json` on stdin and prints what a person
// watching the run needs: each package's verdict as it finishes, the full
// output of every failed test (and of packages that failed to build), and
// at the end a time summary — packages and the slowest tests — so the next
// slow test is visible. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./hack/testsum [-top 25] [-o times.txt]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

// summary collects a run.
type summary struct {
	out     io.Writer
	output  map[key][]string // output of running tests (and packages, test "")
	tests   map[key]float64  // elapsed of finished tests
	pkgs    map[string]float64
	failed  []key
	skipped int
	passed  int
	// first and last are the times of the run's first and last events:
	// its wall time, which the package times (overlapping) do not give.
	first, last time.Time
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, output: map[key][]string{}, tests: map[key]float64{}, pkgs: map[string]float64{}}
}

func (s *summary) add(e event) {
	k := key{e.Package, e.Test}
	if !e.Time.IsZero() {
		if s.first.IsZero() || e.Time.Before(s.first) {
			s.first = e.Time
		}
		if e.Time.After(s.last) {
			s.last = e.Time
		}
	}
	switch e.Action {
	case "output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.pkgs[e.Package] = e.Elapsed
			s.packageDone(e)
			return
		}
		s.tests[k] = e.Elapsed
		switch e.Action {
		case "fail":
			s.failed = append(s.failed, k)
			// Subtests repeat their output in the parent's; print leaves.
			fmt.Fprintf(s.out, "--- FAIL: %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(s.output[k], ""))
		case "skip":
			s.skipped++
		default:
			s.passed++
		}
		delete(s.output, k)
	}
}

// packageDone prints a package's verdict; a package that failed without a
// failing test (a build error, a panic in TestMain) gets its output.
func (s *summary) packageDone(e event) {
	k := key{e.Package, ""}
	switch e.Action {
	case "fail":
		anyTest := false
		for _, f := range s.failed {
			anyTest = anyTest || f.pkg == e.Package
		}
		if !anyTest {
			s.failed = append(s.failed, k)
			fmt.Fprint(s.out, strings.Join(s.output[k], ""))
		}
		fmt.Fprintf(s.out, "FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
	case "skip":
		fmt.Fprintf(s.out, "?   \t%s\t[no test files]\n", e.Package)
	default:
		fmt.Fprintf(s.out, "ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
	}
	delete(s.output, k)
}

// report is the time summary.
func (s *summary) report(w io.Writer, top int) {
	fmt.Fprintf(w, "\n== test time summary: %d passed, %d failed, %d skipped ==\n", s.passed, len(s.failed), s.skipped)
	if !s.first.IsZero() {
		fmt.Fprintf(w, "wall time: %s (packages run in parallel)\n", dur(s.last.Sub(s.first).Seconds()))
	}
	pkgs := make([]string, 0, len(s.pkgs))
	for p := range s.pkgs {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return s.pkgs[pkgs[i]] > s.pkgs[pkgs[j]] })
	fmt.Fprintln(w, "packages, slowest first:")
	for _, p := range pkgs {
		if s.pkgs[p] >= 1 {
			fmt.Fprintf(w, "  %8s  %s\n", dur(s.pkgs[p]), p)
		}
	}
	type tt struct {
		k key
		t float64
	}
	var tests []tt
	for k, t := range s.tests {
		if !strings.Contains(k.test, "/") { // top-level tests; subtests are in them
			tests = append(tests, tt{k, t})
		}
	}
	sort.Slice(tests, func(i, j int) bool { return tests[i].t > tests[j].t })
	fmt.Fprintf(w, "slowest tests:\n")
	for i, t := range tests {
		if i == top {
			break
		}
		fmt.Fprintf(w, "  %8s  %s %s\n", dur(t.t), t.k.pkg, t.k.test)
	}
	if len(s.failed) > 0 {
		fmt.Fprintln(w, "FAILED:")
		for _, f := range s.failed {
			fmt.Fprintf(w, "  %s %s\n", f.pkg, f.test)
		}
	}
}

func dur(sec float64) string {
	return (time.Duration(sec * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func main() {
	top := flag.Int("top", 25, "how many of the slowest tests to list")
	outFile := flag.String("o", "", "also write the time summary to this file")
	flag.Parse()
	s := newSummary(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			// Not an event: go test's own messages (build errors) pass through.
			fmt.Println(sc.Text())
			if strings.HasPrefix(sc.Text(), "FAIL") {
				s.failed = append(s.failed, key{pkg: strings.TrimSpace(strings.TrimPrefix(sc.Text(), "FAIL"))})
			}
			continue
		}
		s.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	s.report(os.Stdout, *top)
	if *outFile != "" {
		os.MkdirAll(filepath.Dir(*outFile), 0o755)
		if f, err := os.Create(*outFile); err == nil {
			s.report(f, 1000)
			f.Close()
		}
	}
	if len(s.failed) > 0 {
		os.Exit(1)
	}
}
