package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/controller"
	"github.com/kiln-project/kiln/deploy/view"
)

// The controller's commands that read or ask, without a host: events from
// the log, the autoscale decision replayed from a series, the live view
// served from the controller's snapshot, and what they say when misused.
func TestDeployControllerCommands(t *testing.T) {
	exportFixture(t, exportRecipe)
	dir, _ := os.Getwd()
	os.WriteFile("fleet.yaml", []byte(`apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: 2
network: {ports: [8080]}
health: {probe: {http: {port: 8080, path: /healthz}}}
autoscale:
  minimum: 1
  maximum: 4
  interval: 1m
  rules:
    - {metric: cpu, timeWindow: 5m, operator: ">", threshold: 70, direction: out}
`), 0o644)
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var log strings.Builder
	for i, e := range []view.Event{
		{At: at, Set: "web", Instance: "web-1", Kind: view.EventHealth, Message: "web-1: healthy → unhealthy (GET /healthz: status 503, want 200)"},
		{At: at.Add(time.Minute), Set: "web", Instance: "web-1", Kind: view.EventRepaired, Message: "Replace web-1: unhealthy for 10m0s"},
		{At: at.Add(2 * time.Minute), Set: "api", Kind: view.EventScaled, Message: "autoscale scaled out"},
	} {
		b, _ := json.Marshal(e)
		log.Write(b)
		log.WriteString("\n")
		if i == 2 {
			log.WriteString(`{"at": "2026-12-01T10:03:00Z", "set": "web", "kind": "sca`) // cut short by a crash
		}
	}
	os.WriteFile(filepath.Join(state, controller.EventsFile), []byte(log.String()), 0o600)

	r := run(t, dir, nil, "deploy", "events", "fleet.yaml", "web", "--state-dir", state)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "Replace web-1") || strings.Contains(r.stdout, "api") {
		t.Errorf("events web: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, nil, "deploy", "events", "fleet.yaml", "--state-dir", state, "-O", "json", "-n", "1")
	if evs := envelopeOf(t, r)["data"].(map[string]any)["events"].([]any); r.code != 0 || len(evs) != 1 || evs[0].(map[string]any)["kind"] != "scaled" {
		t.Errorf("events -n 1 as JSON: %s", r.stdout)
	}

	// A recorded CPU series: 85% for 6 minutes; the replay scales out.
	var s autoscale.Series
	s.Interval = time.Minute
	for i := range 7 {
		s.Samples = append(s.Samples, autoscale.Sample{At: at.Add(time.Duration(i) * time.Minute), Values: []float64{85, 85}})
	}
	b, _ := json.Marshal(map[string]autoscale.Series{"cpu": s})
	os.WriteFile("series.json", b, 0o644)
	r = run(t, dir, nil, "deploy", "autoscale", "fleet.yaml", "web", "--dry-run", "--metrics", "series.json")
	if r.code != 0 || !strings.Contains(r.stdout, "capacity 3  scaled out: rule 0 (cpu average over 5m0s = 85 > 70): 2 → 3") {
		t.Errorf("autoscale --dry-run --metrics: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Misuse says what to do, exit 2.
	for args, want := range map[string]string{
		"deploy autoscale fleet.yaml web":                   "pass --dry-run",
		"deploy upgrade fleet.yaml web":                     "give one of --image",
		"deploy upgrade fleet.yaml web --resume --rollback": "give one of --image",
		"deploy repair fleet.yaml web":                      "needs --resume",
		"deploy events fleet.yaml nope":                     `no set "nope"`,
		"deploy protect fleet.yaml web":                     "want SET/INSTANCE",
	} {
		argv := strings.Fields(args)
		if argv[1] != "protect" { // it asks the hosts, not the controller
			argv = append(argv, "--state-dir", state)
		}
		r := run(t, dir, nil, argv...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("kiln %s: exit %d, want 2 and %q\n%s", args, r.code, want, r.stderr)
		}
	}
	// --rollback with no upgrade recorded says so, and leaves the file.
	before, _ := os.ReadFile("fleet.yaml")
	if r := run(t, dir, nil, "deploy", "upgrade", "fleet.yaml", "web", "--rollback", "--state-dir", state); r.code != 1 || !strings.Contains(r.stderr, "no controller has run set web") {
		t.Errorf("rollback without an upgrade: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile("fleet.yaml"); string(after) != string(before) {
		t.Error("a refused rollback changed the fleet file")
	}

	// The live view, from the snapshot a controller wrote.
	snap := view.Snapshot{SchemaVersion: view.SchemaVersion, Fleet: "fleet.yaml", At: at, Sets: []view.SetView{{Name: "web", Kind: "ScaleSet", Capacity: 2,
		Instances: []view.InstanceView{{Name: "web-0", State: "running", Health: "healthy"}, {Name: "web-1", State: "running", Health: "unhealthy"}}}}}
	b, _ = json.Marshal(snap)
	os.WriteFile(filepath.Join(state, controller.SnapshotFile), b, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(kilnBin, "deploy", "serve", "fleet.yaml", "--state-dir", state, "--listen", addr)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/api/snapshot")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln deploy serve never answered on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a server that is starting
	}
	var got view.Snapshot
	if err := json.Unmarshal(body, &got); err != nil || len(got.Sets) != 1 || len(got.Sets[0].Instances) != 2 || got.Sets[0].Instances[1].Health != "unhealthy" {
		t.Errorf("/api/snapshot: %v\n%s", err, body)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<script") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("the page: %d %s\n%.200s", resp.StatusCode, resp.Header, page)
	}
}
