package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	for _, e := range []event{
		{Time: t0.Add(2 * time.Second), Action: "start", Package: "q"},
		{Time: t0, Action: "start", Package: "p"},
		{Action: "run", Package: "p", Test: "TestA"},
		{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		{Action: "pass", Package: "p", Test: "TestA", Elapsed: 1.5},
		{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:9: boom\n"},
		{Action: "fail", Package: "p", Test: "TestB", Elapsed: 42},
		{Action: "skip", Package: "p", Test: "TestC"},
		{Action: "fail", Package: "p", Elapsed: 44},
		{Action: "output", Package: "q", Output: "q.go:3: undefined: x\n"},
		{Time: t0.Add(90 * time.Second), Action: "fail", Package: "q", Elapsed: 0},
	} {
		b, _ := json.Marshal(e)
		var back event
		json.Unmarshal(b, &back)
		s.add(back)
	}
	s.report(&out, 10)
	got := out.String()
	for _, want := range []string{"--- FAIL: p TestB (42.0s)\n    b_test.go:9: boom", "FAIL\tp\t44.0s", "undefined: x", "1 passed, 2 failed, 1 skipped", "     42s  p TestB", "    1.5s  p TestA", "wall time: 1m30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestA") {
		t.Error("a passing test's output was printed")
	}
}
