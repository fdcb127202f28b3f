package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStallState reads what guests of both cloud-init generations say when
// cloud-init never finishes (testdata/stall, see its README) and names the
// stage that holds it up.
func TestStallState(t *testing.T) {
	for _, tc := range []struct {
		file, status, stage, diagnosis string
		evidence                       []string
	}{
		{file: "debian12-final-waits-for-network.txt", status: "running", stage: "modules-final",
			diagnosis: `cloud-init stage "modules-final" (cloud-final.service) has not started: its start job 132 is waiting for network-online.target/start, which waits for systemd-networkd-wait-online.service/start (running)`,
			evidence: []string{
				"cloud-init status: running (enabled-by-generator): DataSourceNoCloud [seed=/dev/vdb][dsmode=local]",
				"stages (status.json): init-local done, init not started, modules-config not started, modules-final not started",
				"  cloud-init.service          loaded  inactive/dead, condition false",
				"  cloud-config.service        masked  inactive/dead",
				"  132 cloud-final.service/start waiting, waits for job 118",
			}},
		{file: "debian12-final-running.txt", status: "running", stage: "modules-final",
			diagnosis: `cloud-init is still in stage "modules-final" (cloud-final.service: activating/start, started 12 s ago); running jobs: postgresql@15-main.service/start`,
			evidence:  []string{"  cloud-final.service         loaded  activating/start, for 12 s"}},
		{file: "debian13-config-masked.txt", status: "running", stage: "modules-config",
			diagnosis: `cloud-init stage "modules-config" (cloud-config.service) never ran: the unit is masked, and cloud-init's single process (24.3 and later) waits for it`,
			evidence: []string{
				`  cloud-init-main.service     loaded  active/running "Waiting on external services to complete before starting the config stage."`,
				"  cloud-init-network.service  loaded  active/exited",
				"  cloud-final.service         loaded  activating/start, for 280 s",
			}},
		{file: "debian13-network-skipped.txt", status: "running", stage: "init",
			diagnosis: `cloud-init stage "init" (cloud-init-network.service) never ran: a condition of the unit was false, and cloud-init's single process (24.3 and later) waits for it`},
		{file: "debian13-final-running.txt", status: "running", stage: "modules-final",
			diagnosis: `cloud-init is still in stage "modules-final" (cloud-final.service: activating/start, started 47 s ago)`},
		{file: "debian13-main-failed.txt", status: "not started",
			diagnosis: `cloud-init's single process (cloud-init-main.service) failed (result exit-code), so no stage can run any more`,
			evidence:  []string{"cloud-init status: not started (enabled-by-generator): Cloud-init enabled by systemd cloud-init-generator"}},
		{file: "tabular-fallback.txt", status: "running", stage: "modules-config",
			diagnosis: `cloud-init is still in stage "modules-config" (cloud-config.service: activating/start, started 40 s ago); running jobs: man-db.service/start`,
			evidence:  []string{"  124 cloud-final.service/start waiting, waits for job 121"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "stall", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			st := stallState(string(b))
			if st.Status != tc.status || st.Stage != tc.stage {
				t.Errorf("status %q, stage %q; want %q, %q", st.Status, st.Stage, tc.status, tc.stage)
			}
			if st.Diagnosis != tc.diagnosis {
				t.Errorf("diagnosis\n%s\nwant\n%s", st.Diagnosis, tc.diagnosis)
			}
			for _, want := range tc.evidence {
				if !strings.Contains(st.Evidence, want+"\n") && !strings.HasSuffix(st.Evidence, want) {
					t.Errorf("evidence lacks %q:\n%s", want, st.Evidence)
				}
			}
		})
	}
}

// TestStallStateEdges: what the guest says partly, or not at all.
func TestStallStateEdges(t *testing.T) {
	for _, tc := range []struct {
		name, out, stage, diagnosis string
	}{
		{name: "nothing", out: ""},
		{name: "no systemd", out: "--- kiln: cloud-init status\n{\"status\": \"running\", \"detail\": \"Running in stage: init\"}\n--- kiln: units\nSystem has not been booted with systemd as init system (PID 1). Can't operate.\n",
			stage: "init", diagnosis: `cloud-init is still in stage "init" (cloud-init.service)`},
		{name: "only cloud-init status", out: "--- kiln: cloud-init status\n{\"status\": \"running\", \"detail\": \"DataSourceNoCloud [seed=/dev/vdb]\"}\n",
			diagnosis: "cloud-init status says running (DataSourceNoCloud [seed=/dev/vdb]); systemd did not say how its stage units stand"},
		{name: "disabled", out: "--- kiln: cloud-init status\n{\"status\": \"disabled\", \"boot_status_code\": \"disabled-by-kernel-command-line\", \"detail\": \"Cloud-init disabled by kernel parameter cloud-init=disabled\"}\n",
			diagnosis: "cloud-init is disabled in the guest (disabled-by-kernel-command-line): Cloud-init disabled by kernel parameter cloud-init=disabled"},
		{name: "main masked", out: "--- kiln: units\nId=cloud-init-main.service\nLoadState=masked\nActiveState=inactive\nSubState=dead\n",
			diagnosis: "cloud-init's single process (cloud-init-main.service) never ran: the unit is masked, so no stage can run"},
		{name: "stage unit failed", out: "--- kiln: status.json\n{\"v1\": {\"stage\": null, \"init-local\": {\"start\": 1.0, \"finished\": 2.0}, \"init\": {\"start\": 3.0, \"finished\": 4.0}, \"modules-config\": {\"start\": 5.0, \"finished\": 6.0}, \"modules-final\": {\"start\": null, \"finished\": null}}}\n" +
			"--- kiln: units\nResult=exit-code\nId=cloud-final.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\n",
			stage: "modules-final", diagnosis: `cloud-init stage "modules-final" (cloud-final.service) failed (result exit-code)`},
		{name: "never queued, disabled", out: "--- kiln: status.json\n{\"v1\": {\"stage\": null, \"init-local\": {\"start\": 1.0, \"finished\": 2.0}, \"init\": {\"start\": 3.0, \"finished\": 4.0}, \"modules-config\": {\"start\": 5.0, \"finished\": 6.0}, \"modules-final\": {\"start\": null, \"finished\": null}}}\n" +
			"--- kiln: units\nId=cloud-final.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\nConditionResult=no\nConditionTimestampMonotonic=0\n",
			stage: "modules-final", diagnosis: `cloud-init stage "modules-final" (cloud-final.service) never ran: no start job is queued for it (the unit is disabled)`},
		{name: "a job cycle", out: "--- kiln: units\nId=cloud-init-local.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n" +
			"--- kiln: jobs\n5 cloud-init-local.service start waiting\n  waiting for job 6 (a.service/start)\n6 a.service start waiting\n  waiting for job 5 (cloud-init-local.service/start)\n",
			stage: "init-local", diagnosis: `cloud-init stage "init-local" (cloud-init-local.service) has not started: its start job 5 is waiting for a.service/start (waiting)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := stallState(tc.out)
			if st.Stage != tc.stage || st.Diagnosis != tc.diagnosis {
				t.Errorf("stage %q, diagnosis\n%s\nwant %q,\n%s", st.Stage, st.Diagnosis, tc.stage, tc.diagnosis)
			}
		})
	}
}
