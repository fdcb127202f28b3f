package boot

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// When cloud-init never finishes, kiln asks the guest where it stands and
// names the stage that is still running or waiting, so a stall is
// diagnosed in one look.
//
// cloud-init runs in four stages, each behind a systemd unit:
//
//	stage (status.json)  22.x unit             25.x unit                   25.x socket
//	init-local           cloud-init-local      cloud-init-local            local
//	init                 cloud-init            cloud-init-network          network
//	modules-config       cloud-config          cloud-config                config
//	modules-final        cloud-final           cloud-final                 final
//
// Up to 22.x (Debian 12: 22.4) each unit runs a cloud-init process of its
// own; a unit that never runs (masked, its condition false) skips its stage
// and the others go on. From 24.x (Debian 13: 25.1) one process,
// cloud-init-main.service, runs every stage in order; each stage unit is a
// shim that sends "start" to the stage's socket in /run/cloud-init/share and
// waits for the stage to end. That process waits for each stage's shim: a
// stage unit that never starts stops cloud-init there, and with it every
// later stage. The process reports what it waits for in its sd_notify
// status ("Waiting on external services to complete before starting the
// config stage.", "Running (config stage)").

// stallProbe gathers, in one guest command, what stallState reads: the
// guest's uptime, cloud-init's status.json, cloud-init's own view (cloud-init
// status --format json, which 22.4 and 25.1 both have; the plain long form
// otherwise), the stage units' state and systemd's job queue with what each
// job waits for. Each part starts with a "--- kiln: NAME" line. systemctl
// show's properties come as Key=Value lines, one block per unit, in
// systemd's own order of properties (not the order asked for, which is why
// --value is not used).
const stallProbe = `echo '--- kiln: uptime'; cat /proc/uptime
echo '--- kiln: status.json'; cat /run/cloud-init/status.json 2>/dev/null
echo '--- kiln: cloud-init status'
s=$(timeout 20 cloud-init status --long --format json 2>/dev/null)
case $s in '{'*) printf '%s\n' "$s" ;; *) timeout 20 cloud-init status --long 2>&1 | head -n 20 ;; esac
echo '--- kiln: units'
systemctl show -p Id,LoadState,UnitFileState,ActiveState,SubState,Result,ConditionResult,ConditionTimestampMonotonic,InactiveExitTimestampMonotonic,StatusText ` +
	`cloud-init-main.service cloud-init-local.service cloud-init.service cloud-init-network.service cloud-config.service cloud-final.service 2>&1
echo '--- kiln: jobs'
systemctl list-jobs --after --full --no-legend --no-pager 2>&1 | head -n 80`

// mainUnit is cloud-init 24.x and later's single process.
const mainUnit = "cloud-init-main.service"

// stages are cloud-init's stages in order, with their units (24.x names
// first) and the socket the single process waits on.
var stages = []struct {
	name, socket string
	units        []string
}{
	{"init-local", "local", []string{"cloud-init-local.service"}},
	{"init", "network", []string{"cloud-init-network.service", "cloud-init.service"}},
	{"modules-config", "config", []string{"cloud-config.service"}},
	{"modules-final", "final", []string{"cloud-final.service"}},
}

// stallReport is what the guest said about a cloud-init that did not finish.
type stallReport struct {
	uptime float64 // seconds since boot; 0 when unknown

	// cloud-init's status.json: the stage running ("" between stages) and
	// which stages started and finished; nil when there is none.
	stage  string
	status map[string]stageRecord

	// cloud-init status: status, detail, boot_status_code; or its text.
	ciStatus, ciDetail, ciBoot, ciText string

	units map[string]unitState // by Id: an alias asked for is found under its unit's name
	jobs  []job
}

type stageRecord struct {
	Start, Finished *float64
	Errors          []string
}

type unitState struct {
	id, load, fileState, active, sub, result, statusText string
	// conditionFalse: the unit's conditions were checked and one was
	// false (ConditionResult=no alone is also what a unit never started
	// says).
	conditionFalse bool
	since          float64 // InactiveExitTimestampMonotonic, seconds since boot
}

type job struct {
	id                int
	unit, kind, state string
	waitsFor          []int
}

// parseStall reads stallProbe's output. Parts it cannot read stay empty.
func parseStall(out string) stallReport {
	r := stallReport{units: map[string]unitState{}}
	for name, body := range sections(out) {
		switch name {
		case "uptime":
			if f := strings.Fields(body); len(f) > 0 {
				r.uptime, _ = strconv.ParseFloat(f[0], 64)
			}
		case "status.json":
			var s struct {
				V1 map[string]json.RawMessage `json:"v1"`
			}
			if json.Unmarshal([]byte(body), &s) != nil || s.V1 == nil {
				continue
			}
			r.status = map[string]stageRecord{}
			for k, v := range s.V1 {
				if k == "stage" {
					json.Unmarshal(v, &r.stage)
					continue
				}
				var rec stageRecord
				if json.Unmarshal(v, &rec) == nil {
					r.status[k] = rec
				}
			}
		case "cloud-init status":
			r.parseCloudInitStatus(body)
		case "units":
			for _, block := range strings.Split(body, "\n\n") {
				u := parseUnit(block)
				if u.id != "" {
					r.units[u.id] = u
				}
			}
		case "jobs":
			r.jobs = parseJobs(body)
		}
	}
	return r
}

// sections splits stallProbe's output at its "--- kiln: NAME" lines.
func sections(out string) map[string]string {
	m := map[string]string{}
	var name string
	var body []string
	flush := func() {
		if name != "" {
			m[name] = strings.TrimSpace(strings.Join(body, "\n"))
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		if n, ok := strings.CutPrefix(line, "--- kiln: "); ok {
			flush()
			name, body = strings.TrimSpace(n), nil
			continue
		}
		body = append(body, line)
	}
	flush()
	return m
}

// parseCloudInitStatus reads cloud-init status --long in JSON (22.4 and
// later; 24.x and later add the stages of status.json, "stage" among them)
// or as text ("status: running", and "detail:" with its value on the same
// line, or on the next in 22.x).
func (r *stallReport) parseCloudInitStatus(body string) {
	var j struct {
		Status   string  `json:"status"`
		Detail   string  `json:"detail"`
		BootCode string  `json:"boot_status_code"`
		Stage    *string `json:"stage"`
	}
	if strings.HasPrefix(body, "{") && json.Unmarshal([]byte(body), &j) == nil {
		r.ciStatus, r.ciDetail, r.ciBoot = j.Status, j.Detail, j.BootCode
		if r.status == nil && j.Stage != nil {
			r.stage = *j.Stage
		}
	} else {
		lines := strings.Split(body, "\n")
		for i, line := range lines {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "status":
				r.ciStatus = v
			case "boot_status_code":
				r.ciBoot = v
			case "detail":
				if v == "" && i+1 < len(lines) {
					v = strings.TrimSpace(lines[i+1])
				}
				r.ciDetail = v
			}
		}
		if r.ciStatus == "" {
			r.ciText = firstLine(body)
		}
	}
	// 22.x says which stage runs only in the detail.
	if s, ok := strings.CutPrefix(r.ciDetail, "Running in stage: "); ok && r.stage == "" {
		r.stage = strings.TrimSpace(s)
	}
}

func parseUnit(block string) unitState {
	var u unitState
	var condition string
	var checked bool
	for _, line := range strings.Split(block, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "Id":
			u.id = v
		case "LoadState":
			u.load = v
		case "UnitFileState":
			u.fileState = v
		case "ActiveState":
			u.active = v
		case "SubState":
			u.sub = v
		case "Result":
			u.result = v
		case "ConditionResult":
			condition = v
		case "ConditionTimestampMonotonic":
			checked = v != "" && v != "0"
		case "StatusText":
			u.statusText = v
		case "InactiveExitTimestampMonotonic":
			if us, err := strconv.ParseUint(v, 10, 64); err == nil {
				u.since = float64(us) / 1e6
			}
		}
	}
	u.conditionFalse = condition == "no" && checked
	return u
}

var (
	jobRE     = regexp.MustCompile(`^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$`)
	waitingRE = regexp.MustCompile(`waiting for job (\d+) \(`)
)

// parseJobs reads systemctl list-jobs --after --no-legend: a row per job
// (id, unit, type, state), each followed by a row per job it waits for
// ("└─ waiting for job 80 (network-online.target/start)").
func parseJobs(body string) []job {
	var jobs []job
	for _, line := range strings.Split(body, "\n") {
		if m := waitingRE.FindStringSubmatch(line); m != nil {
			if len(jobs) > 0 {
				id, _ := strconv.Atoi(m[1])
				jobs[len(jobs)-1].waitsFor = append(jobs[len(jobs)-1].waitsFor, id)
			}
			continue
		}
		if m := jobRE.FindStringSubmatch(line); m != nil {
			id, _ := strconv.Atoi(m[1])
			jobs = append(jobs, job{id: id, unit: m[2], kind: m[3], state: m[4]})
		}
	}
	return jobs
}

// stallState reads stallProbe's output into the state of a cloud-init
// that has not finished: its status, the stage it was in or waiting for,
// one line naming what held it up ("" when the output says too little) and
// the evidence, briefly, for a report.
func stallState(out string) CloudInitState {
	r := parseStall(out)
	st := CloudInitState{Status: r.ciStatus, Evidence: r.evidence()}
	st.Stage, st.Diagnosis = r.diagnose()
	return st
}

func (r stallReport) diagnose() (stage, line string) {
	if strings.HasPrefix(r.ciBoot, "disabled") || r.ciStatus == "disabled" {
		return "", fmt.Sprintf("cloud-init is disabled in the guest (%s): %s", r.ciBoot, r.ciDetail)
	}
	main, single := r.units[mainUnit]
	single = single && main.load != "" && main.load != "not-found"
	if single {
		switch {
		case main.load == "masked":
			return "", fmt.Sprintf("cloud-init's single process (%s) never ran: the unit is masked, so no stage can run", mainUnit)
		case main.active == "failed" || main.active == "inactive" && main.result != "" && main.result != "success":
			return "", fmt.Sprintf("cloud-init's single process (%s) %s (result %s)%s, so no stage can run any more", mainUnit, main.active, main.result, quoteStatus(main.statusText))
		case main.active == "inactive":
			return "", fmt.Sprintf("cloud-init's single process (%s) has not started%s", mainUnit, r.jobWait(mainUnit))
		}
	}
	// The stage cloud-init says is running.
	if i := stageIndex(r.stage); i >= 0 {
		return r.stage, r.running(i)
	}
	if single {
		if m := runningRE.FindStringSubmatch(main.statusText); m != nil {
			if i := socketIndex(m[1]); i >= 0 {
				return stages[i].name, r.running(i)
			}
		}
		if m := waitingStageRE.FindStringSubmatch(main.statusText); m != nil {
			if i := socketIndex(m[1]); i >= 0 {
				return stages[i].name, r.waitedFor(i, main)
			}
		}
	}
	// Between stages: the first one that has not finished, of those that
	// can run (up to 22.x the others are skipped, not waited for).
	for i, s := range stages {
		if rec, ok := r.status[s.name]; ok && rec.Finished != nil {
			continue
		}
		u, name := r.stageUnit(i)
		if r.status == nil && u.active == "active" {
			continue // no status.json to go by: the unit's state says it is done
		}
		if !single && neverRuns(u) {
			continue
		}
		if single {
			return s.name, r.waitedFor(i, main)
		}
		return s.name, r.notRunning(i, u, name, false)
	}
	what := r.ciStatus
	if what == "" {
		what = "unknown"
	}
	if r.ciDetail != "" {
		what += " (" + firstLine(r.ciDetail) + ")"
	}
	switch {
	case len(r.units) == 0 && r.ciStatus == "":
		return "", ""
	case len(r.units) == 0:
		return "", "cloud-init status says " + what + "; systemd did not say how its stage units stand"
	}
	return "", "cloud-init status says " + what + " but no stage is running or waiting: every stage ran or was skipped, and result.json was not written"
}

var (
	runningRE      = regexp.MustCompile(`Running \((\w+) stage\)`)
	waitingStageRE = regexp.MustCompile(`before starting the (\w+) stage`)
)

func stageIndex(name string) int {
	for i, s := range stages {
		if s.name == name {
			return i
		}
	}
	return -1
}

func socketIndex(socket string) int {
	for i, s := range stages {
		if s.socket == socket {
			return i
		}
	}
	return -1
}

// stageUnit is the unit of stage i this guest has: the first of its names
// systemd knows, else its name in the guest's generation.
func (r stallReport) stageUnit(i int) (unitState, string) {
	for _, n := range stages[i].units {
		if u, ok := r.units[n]; ok && u.load != "" && u.load != "not-found" {
			return u, n
		}
	}
	n := stages[i].units[0]
	if _, single := r.units[mainUnit]; !single || r.units[mainUnit].load == "not-found" {
		n = stages[i].units[len(stages[i].units)-1] // 22.x names
	}
	return r.units[n], n
}

// neverRuns reports a unit that will not run this boot: masked, missing,
// or its conditions false.
func neverRuns(u unitState) bool {
	return u.load == "masked" || u.load == "not-found" || u.load == "" || u.active == "inactive" && u.conditionFalse
}

// running describes stage i as still running.
func (r stallReport) running(i int) string {
	u, name := r.stageUnit(i)
	where := name
	if u.active != "" {
		where += ": " + u.active + "/" + u.sub
		if r.uptime > 0 && u.since > 0 && r.uptime >= u.since {
			where += fmt.Sprintf(", started %.0f s ago", r.uptime-u.since)
		}
	}
	return fmt.Sprintf("cloud-init is still in stage %q (%s)%s", stages[i].name, where, r.otherJobs(name))
}

// waitedFor describes stage i, whose unit cloud-init's single process
// waits for.
func (r stallReport) waitedFor(i int, main unitState) string {
	u, name := r.stageUnit(i)
	if u.active == "activating" {
		return fmt.Sprintf("cloud-init stage %q (%s) is %s/%s but cloud-init's single process still waits for it%s",
			stages[i].name, name, u.active, u.sub, quoteStatus(main.statusText))
	}
	return r.notRunning(i, u, name, true)
}

// notRunning describes stage i whose unit has not run.
func (r stallReport) notRunning(i int, u unitState, name string, single bool) string {
	waits := ""
	if single {
		waits = ", and cloud-init's single process (24.3 and later) waits for it"
	}
	prefix := fmt.Sprintf("cloud-init stage %q (%s)", stages[i].name, name)
	switch {
	case u.load == "masked":
		return prefix + " never ran: the unit is masked" + waits
	case u.load == "not-found" || u.load == "":
		return prefix + " never ran: the unit does not exist" + waits
	case u.active == "failed":
		return fmt.Sprintf("%s failed (result %s)%s", prefix, u.result, waits)
	case u.active == "activating":
		return r.running(i)
	case u.active == "active":
		return fmt.Sprintf("%s is %s/%s but cloud-init never recorded the stage finishing", prefix, u.active, u.sub)
	case u.conditionFalse:
		return prefix + " never ran: a condition of the unit was false" + waits
	}
	if w := r.jobWait(name); w != "" {
		return prefix + " has not started" + w + strings.Replace(waits, ", and", ";", 1)
	}
	why := "no start job is queued for it"
	if u.fileState != "" && u.fileState != "enabled" && u.fileState != "static" {
		why += " (the unit is " + u.fileState + ")"
	}
	return prefix + " never ran: " + why + waits
}

// jobWait describes the start job of unit: ": its start job 97 is
// waiting for network-online.target/start, which waits for
// systemd-networkd-wait-online.service/start (running)", or "".
func (r stallReport) jobWait(unit string) string {
	j := r.job(func(j job) bool { return j.unit == unit })
	if j == nil {
		return ""
	}
	s := fmt.Sprintf(": its %s job %d is %s", j.kind, j.id, j.state)
	seen := map[int]bool{j.id: true}
	for len(j.waitsFor) > 0 && !seen[j.waitsFor[0]] {
		id := j.waitsFor[0]
		seen[id] = true
		next := r.job(func(o job) bool { return o.id == id })
		if next == nil {
			s += fmt.Sprintf(" for job %d", id)
			break
		}
		verb := " for "
		if len(seen) > 2 {
			verb = ", which waits for "
		}
		s += fmt.Sprintf("%s%s/%s", verb, next.unit, next.kind)
		if more := len(j.waitsFor) - 1; more > 0 {
			s += fmt.Sprintf(" (and %d more)", more)
		}
		j = next
	}
	if len(seen) > 1 {
		s += " (" + j.state + ")"
	}
	return s
}

func (r stallReport) job(match func(job) bool) *job {
	for i := range r.jobs {
		if match(r.jobs[i]) {
			return &r.jobs[i]
		}
	}
	return nil
}

// otherJobs lists the jobs systemd still has queued but unit's own and
// those waiting for it (cloud-init.target's, say): what might hold the
// stage up.
func (r stallReport) otherJobs(unit string) string {
	own := r.job(func(j job) bool { return j.unit == unit })
	var running, waiting []string
	for _, j := range r.jobs {
		if j.unit == unit || own != nil && slices.Contains(j.waitsFor, own.id) {
			continue
		}
		s := j.unit + "/" + j.kind
		if j.state == "running" {
			running = append(running, s)
		} else {
			waiting = append(waiting, s)
		}
	}
	all := append(running, waiting...)
	if len(all) == 0 {
		return ""
	}
	s := "; queued jobs: "
	if len(running) > 0 {
		s = "; running jobs: "
		all = running
	}
	if len(all) > 4 {
		return s + strings.Join(all[:4], ", ") + fmt.Sprintf(" and %d more", len(all)-4)
	}
	return s + strings.Join(all, ", ")
}

func quoteStatus(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", s)
}

// evidence renders what the guest said, for a report: cloud-init's status,
// its stages, the stage units and systemd's job queue.
func (r stallReport) evidence() string {
	var b strings.Builder
	switch {
	case r.ciStatus != "":
		fmt.Fprintf(&b, "cloud-init status: %s", r.ciStatus)
		if r.ciBoot != "" {
			fmt.Fprintf(&b, " (%s)", r.ciBoot)
		}
		if r.ciDetail != "" {
			fmt.Fprintf(&b, ": %s", firstLine(r.ciDetail))
		}
		b.WriteString("\n")
	case r.ciText != "":
		fmt.Fprintf(&b, "cloud-init status: %s\n", r.ciText)
	}
	if r.status != nil {
		var parts []string
		for _, s := range stages {
			rec, ok := r.status[s.name]
			switch {
			case !ok || rec.Start == nil:
				parts = append(parts, s.name+" not started")
			case rec.Finished == nil:
				parts = append(parts, s.name+" running")
			case len(rec.Errors) > 0:
				parts = append(parts, fmt.Sprintf("%s done with %d errors", s.name, len(rec.Errors)))
			default:
				parts = append(parts, s.name+" done")
			}
		}
		fmt.Fprintf(&b, "stages (status.json): %s\n", strings.Join(parts, ", "))
	}
	names := append([]string{mainUnit}, stageUnitNames()...)
	var rows []string
	for _, n := range names {
		u, ok := r.units[n]
		if !ok || u.load == "not-found" {
			continue
		}
		row := fmt.Sprintf("  %-27s %-7s %s/%s", n, u.load, u.active, u.sub)
		if u.result != "" && u.result != "success" {
			row += " result " + u.result
		}
		if u.conditionFalse {
			row += ", condition false"
		}
		if u.active == "activating" && r.uptime > 0 && u.since > 0 && r.uptime >= u.since {
			row += fmt.Sprintf(", for %.0f s", r.uptime-u.since)
		}
		if u.statusText != "" {
			row += fmt.Sprintf(" %q", u.statusText)
		}
		rows = append(rows, row)
	}
	if len(rows) > 0 {
		b.WriteString("units:\n" + strings.Join(rows, "\n") + "\n")
	}
	if len(r.jobs) > 0 {
		b.WriteString("jobs:\n")
		for _, j := range r.jobs {
			fmt.Fprintf(&b, "  %d %s/%s %s", j.id, j.unit, j.kind, j.state)
			if len(j.waitsFor) > 0 {
				var ids []string
				for _, id := range j.waitsFor {
					ids = append(ids, strconv.Itoa(id))
				}
				fmt.Fprintf(&b, ", waits for job %s", strings.Join(ids, ", "))
			}
			b.WriteString("\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func stageUnitNames() []string {
	var n []string
	for _, s := range stages {
		n = append(n, s.units...)
	}
	return n
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
