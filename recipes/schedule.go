package recipes

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
)

// Schedules are written in cron syntax ("*/5 * * * *", "@daily") or in
// systemd calendar syntax ("daily", "Mon..Fri 02:00"); kiln runs them as
// systemd timers, so cron expressions are translated to OnCalendar values.

var calendarShorthands = map[string]bool{
	"minutely": true, "hourly": true, "daily": true, "weekly": true, "monthly": true,
	"yearly": true, "annually": true, "quarterly": true, "semiannually": true,
}

var cronMacros = map[string]string{
	"@yearly": "yearly", "@annually": "yearly", "@monthly": "monthly", "@weekly": "weekly",
	"@daily": "daily", "@midnight": "daily", "@hourly": "hourly",
}

// OnCalendar translates a schedule into systemd OnCalendar values (cron
// needs two when it restricts both day of month and day of week, because
// cron ORs those and systemd ANDs them).
func OnCalendar(schedule string) ([]string, error) {
	s := strings.TrimSpace(schedule)
	if s == "" {
		return nil, fmt.Errorf("empty schedule (write cron syntax like \"*/5 * * * *\" or systemd calendar syntax like \"daily\")")
	}
	if strings.HasPrefix(s, "@") {
		if s == "@reboot" {
			return nil, fmt.Errorf("@reboot is not a schedule; use the job-runner role to run a job at boot")
		}
		if v, ok := cronMacros[s]; ok {
			return []string{v}, nil
		}
		return nil, fmt.Errorf("unknown cron macro %q (want @hourly, @daily, @weekly, @monthly or @yearly)", s)
	}
	if f := strings.Fields(s); len(f) == 5 && looksLikeCron(f) {
		return cronToCalendar(f)
	}
	if err := checkCalendar(s); err != nil {
		return nil, err
	}
	return []string{s}, nil
}

var cronFieldRE = lazyre.New(`^[0-9A-Za-z*/,-]+$`)

// looksLikeCron: five fields of cron characters, and no systemd markers.
func looksLikeCron(f []string) bool {
	for _, x := range f {
		if !cronFieldRE.MatchString(x) || strings.Contains(x, "..") {
			return false
		}
	}
	return true
}

type cronField struct {
	name     string
	min, max int
	names    []string // index = value
}

var cronFields = []cronField{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var weekdays = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func cronToCalendar(f []string) ([]string, error) {
	vals := make([][]int, 5) // nil = every value ("*")
	for i, field := range f {
		v, err := parseCronField(field, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("bad cron schedule %q: %v", strings.Join(f, " "), err)
		}
		vals[i] = v
	}
	if vals[4] != nil { // 7 is Sunday too
		seen := map[int]bool{}
		var dow []int
		for _, d := range vals[4] {
			if seen[d%7] {
				continue
			}
			seen[d%7] = true
			dow = append(dow, d%7)
		}
		sort.Ints(dow)
		vals[4] = dow
	}
	tm := fmt.Sprintf("%s:%s:00", list(vals[1], 2), list(vals[0], 2))
	date := func(dom []int) string { return fmt.Sprintf("*-%s-%s", list(vals[3], 2), list(dom, 2)) }
	switch {
	case vals[2] != nil && vals[4] != nil:
		return []string{date(vals[2]) + " " + tm, days(vals[4]) + " " + date(nil) + " " + tm}, nil
	case vals[4] != nil:
		return []string{days(vals[4]) + " " + date(nil) + " " + tm}, nil
	}
	return []string{date(vals[2]) + " " + tm}, nil
}

// parseCronField returns the sorted values a field selects, nil for "*".
func parseCronField(s string, f cronField) ([]int, error) {
	if s == "*" {
		return nil, nil
	}
	set := map[int]bool{}
	for _, item := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%s: step %q must be a positive number", f.name, stepStr)
			}
			step = n
		}
		lo, hi := f.min, f.max
		if f.name == "day of week" {
			hi = 6 // */2 over weekdays means Sun..Sat, not including 7
		}
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, f); err != nil {
				return nil, err
			}
			if hi, err = cronValue(b, f); err != nil {
				return nil, err
			}
			if lo > hi {
				return nil, fmt.Errorf("%s: range %s runs backwards", f.name, rng)
			}
		default:
			v, err := cronValue(rng, f)
			if err != nil {
				return nil, err
			}
			lo = v
			if !hasStep {
				hi = v
			}
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	out := make([]int, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Ints(out)
	return out, nil
}

func cronValue(s string, f cronField) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%s: empty value", f.name)
	}
	for i, n := range f.names {
		if n != "" && strings.EqualFold(s, n) {
			return i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", f.name, s)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %d is out of range %d-%d", f.name, v, f.min, f.max)
	}
	return v, nil
}

func list(vals []int, width int) string {
	if vals == nil {
		return "*"
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%0*d", width, v)
	}
	return strings.Join(parts, ",")
}

func days(vals []int) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = weekdays[v]
	}
	return strings.Join(parts, ",")
}

// Systemd calendar syntax: [weekdays] [[year-]month-day] [hour:minute[:second]] [timezone].
var (
	calWeekdayRE = lazyre.New(`^(?i:(mon|tue|wed|thu|fri|sat|sun)[a-z]*(\.\.(mon|tue|wed|thu|fri|sat|sun)[a-z]*)?)(,(?i:(mon|tue|wed|thu|fri|sat|sun)[a-z]*(\.\.(mon|tue|wed|thu|fri|sat|sun)[a-z]*)?))*$`)
	calComponent = `(\*|[0-9]+(\.\.[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(\.\.[0-9]+)?)(/[0-9]+)?)*`
	calDateRE    = lazyre.New(`^(` + calComponent + `-)?` + calComponent + `(-|~)` + calComponent + `$`)
	calTimeRE    = lazyre.New(`^` + calComponent + `:` + calComponent + `(:` + calComponent + `(\.[0-9]+)?)?$`)
	calZoneRE    = lazyre.New(`^(UTC|[A-Z][A-Za-z_]+/[A-Za-z_/+-]+)$`)
)

func checkCalendar(s string) error {
	if calendarShorthands[strings.ToLower(s)] {
		return nil
	}
	bad := func() error {
		return fmt.Errorf("bad schedule %q: not cron syntax (\"m h dom mon dow\", e.g. \"*/5 * * * *\") "+
			"nor systemd calendar syntax (e.g. \"daily\", \"*:0/15\", \"Mon..Fri 02:00\")", s)
	}
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 4 {
		return bad()
	}
	i := 0
	if calWeekdayRE.MatchString(fields[i]) {
		i++
	}
	if i < len(fields) && calDateRE.MatchString(fields[i]) {
		i++
	}
	if i < len(fields) && calTimeRE.MatchString(fields[i]) {
		i++
	}
	if i > 0 && i < len(fields) && calZoneRE.MatchString(fields[i]) {
		i++
	}
	if i != len(fields) || i == 0 {
		return bad()
	}
	return checkCalendarRanges(fields)
}

// checkCalendarRanges catches out-of-range numbers the patterns let through.
func checkCalendarRanges(fields []string) error {
	for _, f := range fields {
		var parts []string
		var limits []int
		switch {
		case calTimeRE.MatchString(f):
			parts, limits = strings.Split(f, ":"), []int{23, 59, 60}
		case calDateRE.MatchString(f):
			parts = strings.FieldsFunc(f, func(r rune) bool { return r == '-' || r == '~' })
			limits = []int{12, 31}
			if len(parts) == 3 {
				limits = []int{9999, 12, 31}
			}
		default:
			continue
		}
		for i, p := range parts {
			for _, n := range regexp.MustCompile(`[0-9]+`).FindAllString(strings.Split(p, "/")[0], -1) {
				if v, _ := strconv.Atoi(n); i < len(limits) && v > limits[i] {
					return fmt.Errorf("bad schedule: %s in %q is out of range", n, f)
				}
			}
		}
	}
	return nil
}
