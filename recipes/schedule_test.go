package recipes

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestOnCalendar(t *testing.T) {
	cases := []struct {
		in   string
		want string // OnCalendar values joined by " | "
	}{
		{"* * * * *", "*-*-* *:*:00"},
		{"*/5 * * * *", "*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00"},
		{"30 2 * * *", "*-*-* 02:30:00"},
		{"0 9-17/4 * * mon-fri", "Mon,Tue,Wed,Thu,Fri *-*-* 09,13,17:00:00"},
		{"15 3 1 jan *", "*-01-01 03:15:00"},
		{"0 0 1 * 0", "*-*-01 00:00:00 | Sun *-*-* 00:00:00"}, // cron ORs day-of-month and day-of-week
		{"0 0 * * 7", "Sun *-*-* 00:00:00"},
		{"0 12 * * 1,3,5", "Mon,Wed,Fri *-*-* 12:00:00"},
		{"@daily", "daily"},
		{"@hourly", "hourly"},
		{"daily", "daily"},
		{"Mon..Fri 02:00", "Mon..Fri 02:00"},
		{"*:0/15", "*:0/15"},
		{"*-*-* 04:00:00 UTC", "*-*-* 04:00:00 UTC"},
		{"Sat,Sun *-*-01..07 10:00", "Sat,Sun *-*-01..07 10:00"},
	}
	for _, c := range cases {
		got, err := OnCalendar(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if g := strings.Join(got, " | "); g != c.want {
			t.Errorf("%q: got %q, want %q", c.in, g, c.want)
		}
	}
}

func TestOnCalendarBad(t *testing.T) {
	for in, want := range map[string]string{
		"":              "empty schedule",
		"61 * * * *":    "minute: 61 is out of range 0-59",
		"* 24 * * *":    "hour: 24 is out of range 0-23",
		"* * 0 * *":     "day of month: 0 is out of range 1-31",
		"* * * 13 *":    "month: 13 is out of range 1-12",
		"* * * * 8":     "day of week: 8 is out of range 0-7",
		"*/0 * * * *":   "step",
		"5-1 * * * *":   "runs backwards",
		"* * * foo *":   `"foo" is not a number`,
		"@reboot":       "job-runner",
		"@sometimes":    "unknown cron macro",
		"every tuesday": "not cron syntax",
		"25:00":         "out of range",
		"Mon..Fri 2":    "not cron syntax",
	} {
		_, err := OnCalendar(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want error containing %q, got %v", in, want, err)
		}
	}
}

// TestOnCalendarSystemd has systemd itself parse every translation: what
// kiln writes into a timer must be what systemd accepts.
func TestOnCalendarSystemd(t *testing.T) {
	testutil.Integration(t)
	analyze := testutil.NeedTool(t, "systemd-analyze")
	for _, in := range []string{"* * * * *", "*/5 * * * *", "30 2 * * *", "0 9-17/4 * * mon-fri", "15 3 1 jan *",
		"0 0 1 * 0", "0 12 * * 1,3,5", "@daily", "@weekly", "daily", "Mon..Fri 02:00", "*:0/15", "Sat,Sun *-*-01..07 10:00", "quarterly"} {
		cal, err := OnCalendar(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		for _, c := range cal {
			out, err := exec.Command(analyze, "calendar", c).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze calendar %q (from %q) failed: %v\n%s", c, in, err, out)
			}
		}
	}
}
