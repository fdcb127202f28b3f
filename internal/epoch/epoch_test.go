package epoch

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"1700000000", 1700000000, ""},
		{"253402300799", 253402300799, ""}, // 9999-12-31T23:59:59Z
		{"123abc", 0, "digits only"},
		{" 123", 0, "digits only"},
		{"-1", 0, "digits only"},
		{"1.5", 0, "digits only"},
		{"+5", 0, "digits only"},
		{"", 0, "empty"},
		{"253402300800", 0, "past 9999-12-31"},
		{"99999999999999999999", 0, "past 9999-12-31"},
	} {
		got, err := Parse(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
				t.Errorf("Parse(%q) = %v, %v; want an error with %q naming the variable", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got.Unix() != c.want || got.Location() != time.UTC {
			t.Errorf("Parse(%q) = %v, %v; want %d UTC", c.in, got, err, c.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(Var, "")
	if got, err := FromEnv(); err != nil || !got.Equal(Default) {
		t.Errorf("empty: %v %v", got, err)
	}
	t.Setenv(Var, "86400")
	if got, err := FromEnv(); err != nil || got.Unix() != 86400 {
		t.Errorf("86400: %v %v", got, err)
	}
	t.Setenv(Var, "123abc")
	if _, err := FromEnv(); err == nil {
		t.Error("123abc accepted")
	}
}

func TestOr(t *testing.T) {
	if !Or(time.Time{}).Equal(Default) {
		t.Error("zero is not Default")
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if got := Or(at); !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("Or(%v) = %v", at, got)
	}
}
