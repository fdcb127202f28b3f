package imagetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A cloud-init that never finishes fails the boot with the stage that held
// it up, and the report keeps what the guest said (JSON included).
func TestStepCloudInitStall(t *testing.T) {
	units := "--- kiln: cloud-init status\n{\"status\": \"running\", \"boot_status_code\": \"enabled-by-generator\", \"detail\": \"DataSourceNoCloud [seed=/dev/vdb]\"}\n" +
		"--- kiln: units\nStatusText=Waiting on external services to complete before starting the config stage.\nId=cloud-init-main.service\nLoadState=loaded\nActiveState=active\nSubState=running\n\n" +
		"Id=cloud-config.service\nLoadState=masked\nActiveState=inactive\nSubState=dead\n"
	bootCtx, cancel := context.WithTimeoutCause(context.Background(), time.Millisecond, errBootTimeout)
	defer cancel()
	r := &run{opts: Options{BootTimeout: time.Minute}, bootCtx: bootCtx}
	r.exec = func(ctx context.Context, script string) (string, int, error) {
		if strings.HasPrefix(script, "while") {
			<-ctx.Done()
			return "", -1, ctx.Err()
		}
		return units, 0, nil
	}
	err := r.stepCloudInit(context.Background())
	const want = `the guest did not come up within 1m0s: waiting for cloud-init to finish: context deadline exceeded; cloud-init stage "modules-config" (cloud-config.service) never ran: the unit is masked, and cloud-init's single process (24.3 and later) waits for it`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
	b, _ := json.Marshal(r.rep)
	var rep map[string]any
	json.Unmarshal(b, &rep)
	ci, _ := rep["cloudInit"].(map[string]any)
	if ci["status"] != "running" || ci["stage"] != "modules-config" || !strings.HasPrefix(ci["diagnosis"].(string), `cloud-init stage "modules-config"`) {
		t.Errorf("cloudInit in the JSON report: %v", ci)
	}
	if d, _ := rep["diagnostics"].(string); !strings.Contains(d, "cloud-config.service        masked  inactive/dead") {
		t.Errorf("diagnostics in the JSON report:\n%s", d)
	}
}
