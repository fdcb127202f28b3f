package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The network stage's condition, run by sh against instance data as
// cloud-init 22.4 writes it (json_dumps: indent 1, sorted keys).
func TestNetworkStageCondition(t *testing.T) {
	const path = "/run/cloud-init/instance-data.json"
	script := asset("cloud-init-network-stage")
	if strings.Count(script, path) != 1 {
		t.Fatalf("the script should read %s once:\n%s", path, script)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "instance-data.json")
	script = strings.Replace(script, path, data, 1)
	runs := func() bool {
		t.Helper()
		err := exec.Command("sh", "-c", script).Run()
		if err == nil {
			return true
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return false
		}
		t.Fatalf("condition: %v (ExecCondition treats exit codes above 254 as failure)", err)
		return false
	}
	if !runs() {
		t.Error("no instance data (no datasource found yet): the network stage must run")
	}
	instanceData := func(dsmode string) string {
		return "{\n \"ds\": {\n  \"_doc\": \"EXPERIMENTAL\",\n  \"meta_data\": {\n   \"dsmode\": \"" + dsmode +
			"\",\n   \"instance-id\": \"i-1\",\n   \"local-hostname\": \"web-1\"\n  }\n },\n \"v1\": {\n  \"cloud_name\": \"nocloud\"\n }\n}\n"
	}
	for dsmode, want := range map[string]bool{"local": false, "net": true, "disabled": true} {
		if err := os.WriteFile(data, []byte(instanceData(dsmode)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := runs(); got != want {
			t.Errorf("dsmode %s: network stage runs = %v, want %v", dsmode, got, want)
		}
	}
	if err := os.WriteFile(data, []byte("{\n \"v1\": {\n  \"local-hostname\": \"local\"\n }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !runs() {
		t.Error("instance data without a dsmode: the network stage must run")
	}
}

// Tuned trees carry the network stage's condition and grow their root with
// kiln-grow-root.service instead of cloud-init's growpart; the untuned
// baseline keeps cloud-init's stock units and modules.
func TestTuneImageStages(t *testing.T) {
	for _, tuned := range []bool{true, false} {
		r := root{dir: t.TempDir()}
		if err := tuneImage(r, "0b1e7f0c-0000-4000-8000-000000000001", []string{"NoCloud", "None"}, tuned); err != nil {
			t.Fatal(err)
		}
		dropIn, err := os.ReadFile(filepath.Join(r.dir, "etc/systemd/system/cloud-init.service.d/50-kiln.conf"))
		if !tuned {
			if err == nil {
				t.Error("untuned image has the network-stage drop-in")
			}
			continue
		}
		if err != nil || !strings.Contains(string(dropIn), "ExecCondition="+networkStageScript) {
			t.Fatalf("drop-in: %q, %v", dropIn, err)
		}
		st, err := os.Stat(filepath.Join(r.dir, networkStageScript))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("condition script: %v %v", st, err)
		}
		if _, err := os.Lstat(filepath.Join(r.dir, "etc/systemd/system/cloud-init-local.service")); err == nil {
			t.Error("the local stage is masked: it applies kiln's seeds")
		}
		if target, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system/sysinit.target.wants/kiln-grow-root.service")); err != nil || target != "/etc/systemd/system/kiln-grow-root.service" {
			t.Errorf("kiln-grow-root.service is not enabled: %q %v", target, err)
		}
		cfg, _ := os.ReadFile(filepath.Join(r.dir, "etc/cloud/cloud.cfg.d/99-kiln.cfg"))
		if strings.Contains(string(cfg), "- growpart") || strings.Contains(string(cfg), "- resizefs") {
			t.Errorf("cloud-init still grows the root:\n%s", cfg)
		}
	}
}
