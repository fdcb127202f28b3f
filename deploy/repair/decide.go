package repair

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

// Instance is one instance of the set as the controller observes it.
type Instance struct {
	Name string
	// Health is its health as it runs now; a repaired instance starts
	// over (health.Start at its boot), which is how Decide sees that a
	// repair is done.
	Health health.State
	// Protection: either keeps automatic repairs away (Azure: "both the
	// protection policies").
	ProtectFromScaleIn, ProtectFromScaleSetActions bool
}

// Outcome is how a repaired instance came back.
type Outcome string

// The outcomes of a repair; "" while it is under way.
const (
	// Recovered: the instance booted after the repair and became healthy.
	Recovered Outcome = "recovered"
	// FailedAgain: it booted after the repair and became unhealthy again;
	// Repair.Again says how.
	FailedAgain Outcome = "failedAgain"
	// NotBack: it had not booted again (or was not there) a grace period
	// after the repair was ordered: the action itself failed.
	NotBack Outcome = "notBack"
)

// Repair is a repair ordered by Decide, and how it went. The controller
// keeps Decision.History and passes it back.
type Repair struct {
	Instance string    `json:"instance"`
	Action   Action    `json:"action"`
	At       time.Time `json:"at"`     // ordered
	Reason   string    `json:"reason"` // the failure it repaired
	Outcome  Outcome   `json:"outcome,omitempty"`
	// Again is the failure the instance came back with (FailedAgain), or
	// what NotBack means.
	Again     string    `json:"again,omitempty"`
	SettledAt time.Time `json:"settledAt,omitzero"`
}

// InFlight reports whether the repair is under way: ordered, and its
// outcome not known yet.
func (r Repair) InFlight() bool { return r.Outcome == "" }

// failed reports whether the repair did not help.
func (r Repair) failed() bool { return r.Outcome == FailedAgain || r.Outcome == NotBack }

// Input is what Decide decides from.
type Input struct {
	Set      string // for messages
	Now      time.Time
	Capacity int // the set's capacity; MaxPercent of it may be under repair
	// Instances are the set's instances as observed now.
	Instances []Instance
	// History is the last Decision's History (nil at first).
	History []Repair
	// Resumed is when the operator last ran `kiln deploy repair SET
	// --resume`; zero if never. Repairs ordered before it do not count
	// toward a storm.
	Resumed time.Time
}

// Order is one repair to do now.
type Order struct {
	Instance string
	Action   Action
	Why      string
}

// Hold is an unhealthy (or under repair) instance not repaired now, and
// why.
type Hold struct {
	Instance string
	Why      string
}

// Decision is what Decide decided.
type Decision struct {
	Repair []Order
	Held   []Hold
	// Suspended is a storm: nothing is repaired until Reason's condition
	// is gone.
	Suspended bool
	// Reason sums the decision up for people: the repairs, or why there
	// are none.
	Reason string
	// History is the repair history to keep and pass back: outcomes
	// settled from the observed set, this decision's orders appended, the
	// oldest finished repairs dropped.
	History []Repair
}

// Decide says which instances of a set to repair now, by the rules of the
// package documentation. It is pure: the same policy and input always give
// the same Decision, and its input is not changed.
func Decide(p Policy, in Input) Decision {
	by := map[string]Instance{}
	for _, x := range in.Instances {
		by[x.Name] = x
	}
	history := settle(in.History, by, in.Now, p.GracePeriod)
	if !p.Enabled {
		return Decision{Reason: "automatic repairs are off", History: prune(history)}
	}
	insts := slices.Clone(in.Instances)
	slices.SortFunc(insts, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })

	d := Decision{}
	pending := map[string]Repair{}
	for _, r := range history {
		if r.InFlight() {
			pending[r.Instance] = r
		}
	}
	limit := max(1, in.Capacity*MaxPercent/100)

	if reason, ok := everyInstanceFails(in.Set, insts); ok {
		d.Suspended, d.Reason = true, reason
	} else if reason, ok := repairsFail(in.Set, history, by, in.Resumed); ok {
		d.Suspended, d.Reason = true, reason
	}

	// Instances under repair are held; then the unhealthy ones, in the
	// order they would be repaired: longest unhealthy first.
	var eligible []Instance
	for _, x := range insts {
		if r, ok := pending[x.Name]; ok {
			d.Held = append(d.Held, Hold{x.Name, fmt.Sprintf("%s under way, ordered at %s (for: %s)", strings.ToLower(string(r.Action)), stamp(r.At), r.Reason)})
			continue
		}
		if x.Health.Status != health.Unhealthy {
			continue
		}
		since := in.Now.Sub(x.Health.Since)
		switch {
		case x.ProtectFromScaleSetActions:
			d.Held = append(d.Held, Hold{x.Name, "protected from scale-set actions"})
		case x.ProtectFromScaleIn:
			d.Held = append(d.Held, Hold{x.Name, "protected from scale-in (automatic repairs skip either protection)"})
		case d.Suspended:
			d.Held = append(d.Held, Hold{x.Name, "repairs suspended"})
		case since < p.GracePeriod:
			d.Held = append(d.Held, Hold{x.Name, fmt.Sprintf("unhealthy for %s, in its grace period until %s (%s)", since, stamp(x.Health.Since.Add(p.GracePeriod)), x.Health.Reason)})
		default:
			eligible = append(eligible, x)
		}
	}
	// Missing instances under repair (a replace deletes before it creates).
	for _, r := range history {
		if _, ok := by[r.Instance]; !ok && r.InFlight() {
			d.Held = append(d.Held, Hold{r.Instance, fmt.Sprintf("%s under way, ordered at %s (for: %s)", strings.ToLower(string(r.Action)), stamp(r.At), r.Reason)})
		}
	}
	slices.SortStableFunc(eligible, func(a, b Instance) int { return a.Health.Since.Compare(b.Health.Since) })
	free := limit - len(pending)
	for _, x := range eligible {
		if free <= 0 {
			d.Held = append(d.Held, Hold{x.Name, fmt.Sprintf("waiting for a repair slot: %d at a time (%d%% of capacity %d, at least one), %d under way", limit, MaxPercent, in.Capacity, len(pending)+len(d.Repair))})
			continue
		}
		free--
		why := fmt.Sprintf("unhealthy for %s, past the grace period %s: %s", in.Now.Sub(x.Health.Since), p.GracePeriod, x.Health.Reason)
		d.Repair = append(d.Repair, Order{Instance: x.Name, Action: p.Action, Why: why})
		history = append(history, Repair{Instance: x.Name, Action: p.Action, At: in.Now, Reason: x.Health.Reason})
	}
	d.History = prune(history)
	if !d.Suspended {
		d.Reason = summary(d)
	}
	return d
}

// settle fills in the outcome of the repairs under way from the observed
// set: an instance booted since its repair is Recovered once healthy and
// FailedAgain once unhealthy; one not booted since (or not there) a grace
// period after the order is NotBack.
func settle(history []Repair, by map[string]Instance, now time.Time, grace time.Duration) []Repair {
	out := slices.Clone(history)
	for i, r := range out {
		if !r.InFlight() {
			continue
		}
		x, ok := by[r.Instance]
		back := ok && !x.Health.Booted.Before(r.At)
		switch {
		case back && x.Health.Status == health.Healthy:
			r.Outcome = Recovered
		case back && x.Health.Status == health.Unhealthy:
			r.Outcome, r.Again = FailedAgain, x.Health.Reason
		case !back && !now.Before(r.At.Add(grace)):
			r.Outcome, r.Again = NotBack, fmt.Sprintf("not back %s after the %s", grace, strings.ToLower(string(r.Action)))
		default:
			continue
		}
		r.SettledAt = now
		out[i] = r
	}
	return out
}

// prune keeps every repair under way and the last HistoryLength finished
// ones, in the order they were ordered.
func prune(history []Repair) []Repair {
	finished := 0
	for _, r := range history {
		if !r.InFlight() {
			finished++
		}
	}
	var out []Repair
	for _, r := range history {
		if !r.InFlight() && finished > HistoryLength {
			finished--
			continue
		}
		out = append(out, r)
	}
	return out
}

// everyInstanceFails is the first storm rule: a set of two instances or
// more, every one unhealthy, all with the same failure. A new instance
// would fail alike (a dependency is down, or every instance has the same
// fault); the rule lifts by itself once one instance is healthy again or
// the failures differ.
func everyInstanceFails(set string, insts []Instance) (string, bool) {
	if len(insts) < 2 {
		return "", false
	}
	for _, x := range insts {
		if x.Health.Status != health.Unhealthy {
			return "", false
		}
	}
	first := normalize(insts[0].Health.Reason, insts[0].Name)
	for _, x := range insts[1:] {
		if normalize(x.Health.Reason, x.Name) != first {
			return "", false
		}
	}
	return fmt.Sprintf("every instance of %s fails the same way (%d of %d: %s): repairs suspended, as new instances would fail alike; they resume by themselves once an instance is healthy again or the failures differ",
		set, len(insts), len(insts), insts[0].Health.Reason), true
}

// repairsFail is the second storm rule: the last StormRepairs finished
// repairs ordered since the last resume all failed, the same way, and none
// of their instances is healthy now. More would fail alike (the image or
// recipe is broken); the rule lifts once the operator resumes repairs, or
// one of those instances is healthy again.
func repairsFail(set string, history []Repair, by map[string]Instance, resumed time.Time) (string, bool) {
	var last []Repair
	for _, r := range slices.Backward(history) {
		if !r.InFlight() && !r.At.Before(resumed) {
			last = append(last, r)
			if len(last) == StormRepairs {
				break
			}
		}
	}
	if len(last) < StormRepairs {
		return "", false
	}
	first := normalize(last[0].Again, last[0].Instance)
	var names []string
	for _, r := range slices.Backward(last) {
		if !r.failed() || normalize(r.Again, r.Instance) != first {
			return "", false
		}
		if x, ok := by[r.Instance]; ok && x.Health.Status == health.Healthy {
			return "", false
		}
		names = append(names, r.Instance)
	}
	return fmt.Sprintf("the last %d repairs of %s came back failing the same way (%s: %s): repairs suspended: fix the image or recipe, then `kiln deploy repair %s --resume`",
		StormRepairs, set, strings.Join(names, ", "), last[0].Again, set), true
}

var (
	reStamp    = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?`)
	reClock    = regexp.MustCompile(`\b\d\d:\d\d:\d\d(\.\d+)?\b`)
	reIPv4     = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`)
	reIPv6     = regexp.MustCompile(`\[[0-9a-fA-F:.]+\](:\d+)?`)
	reDuration = regexp.MustCompile(`\b(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+\b`)
	reHex      = regexp.MustCompile(`\b[0-9a-f]{12,}\b`)
	reSpace    = regexp.MustCompile(`\s+`)
)

// normalize is a failure as the storm rules compare it: the instance's own
// name, times, addresses (user networking forwards each instance to its
// own host port), durations and long hex strings stand for what they are,
// and whitespace is collapsed. Status codes, ports and paths are kept:
// "status 503" and "status 500" are different failures.
func normalize(reason, instance string) string {
	s := reason
	s = replaceWord(s, instance, "<instance>")
	s = reStamp.ReplaceAllString(s, "<time>")
	s = reClock.ReplaceAllString(s, "<time>")
	s = reIPv4.ReplaceAllString(s, "<address>")
	s = reIPv6.ReplaceAllString(s, "<address>")
	s = reDuration.ReplaceAllString(s, "<duration>")
	s = reHex.ReplaceAllString(s, "<hex>")
	return strings.TrimSpace(reSpace.ReplaceAllString(s, " "))
}

// replaceWord replaces word in s where it is not part of a longer word
// (web-1 in "web-1 failed", not in "web-10").
func replaceWord(s, word, with string) string {
	if word == "" {
		return s
	}
	isWord := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	var b strings.Builder
	from := 0 // s[:from] is written
	for at := 0; ; {
		i := strings.Index(s[at:], word)
		if i < 0 {
			break
		}
		i += at
		j := i + len(word)
		if (i == 0 || !isWord(s[i-1])) && (j == len(s) || !isWord(s[j])) {
			b.WriteString(s[from:i])
			b.WriteString(with)
			from = j
		}
		at = i + 1
	}
	b.WriteString(s[from:])
	return b.String()
}

// summary is the Reason of a decision that is not a suspension.
func summary(d Decision) string {
	var parts []string
	for _, o := range d.Repair {
		parts = append(parts, fmt.Sprintf("%s %s", strings.ToLower(string(o.Action)), o.Instance))
	}
	s := "nothing to repair"
	if len(parts) > 0 {
		s = "repairing: " + strings.Join(parts, ", ")
	}
	if len(d.Held) > 0 {
		s += fmt.Sprintf("; %d held", len(d.Held))
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
