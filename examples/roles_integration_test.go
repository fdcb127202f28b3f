package examples

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/testguest"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// Every built-in role, proven in a booted VM: each example (or a variant of
// it that extends the example) is baked from the cached base, booted once
// under QEMU with an instance seed, and its workload checked from outside.

func needVM(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "qemu-img", "grub-mkimage", "unshare"} {
		testutil.NeedTool(t, tool)
	}
	testutil.NeedGuest(t)
}

// variant writes a recipe that extends an example.
func variant(t *testing.T, example, body string) string {
	t.Helper()
	abs, err := filepath.Abs(example)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "variant.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: kiln/v1\nextends: "+abs+"\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bakeAndTest bakes a recipe and boots it once under BIOS.
func bakeAndTest(t *testing.T, recipe string, opts imagetest.Options) imagetest.Report {
	t.Helper()
	return bakeAndTestUnder(t, recipe, "bios", nil, opts)
}

// bakeAndTestUnder bakes a recipe and boots it once under firmware;
// baked, when set, sees the image before it boots.
func bakeAndTestUnder(t *testing.T, recipe, firmware string, baked func(image string), opts imagetest.Options) imagetest.Report {
	t.Helper()
	return bakeAndTestEach(t, recipe, []string{firmware}, baked, opts)[0]
}

// bakeAndTestEach bakes a recipe and boots it once under each firmware.
func bakeAndTestEach(t *testing.T, recipe string, firmware []string, baked func(image string), opts imagetest.Options) []imagetest.Report {
	t.Helper()
	ctx := context.Background()
	plan, err := recipes.LoadPlan(recipe)
	if err != nil {
		t.Fatal(err)
	}
	b := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)})
	img := filepath.Join(t.TempDir(), plan.Recipe.Name+".qcow2")
	if _, err := b.Bake(ctx, plan, img); err != nil {
		t.Fatal(err)
	}
	if baked != nil {
		baked(img)
	}
	opts.Firmware = firmware
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 8 * time.Minute
	}
	// Tested the way `kiln bake` then `kiln test IMAGE` does: the instance
	// seed comes from the recipe the image's manifest names.
	target, err := imagetest.Resolve(img, "")
	if err != nil {
		t.Fatal(err)
	}
	if target.Plan == nil || target.Plan.Digest != plan.Digest {
		t.Fatalf("kiln test would not use the recipe the image was baked from: %q", target.Notes)
	}
	opts.Boot = testguest.Runner() // one guest at a time on this machine
	reports, err := imagetest.Run(ctx, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	return reports
}

func requireOK(t *testing.T, r imagetest.Report) {
	t.Helper()
	if !r.OK {
		t.Fatalf("%s\nchecks: %+v\nguest:\n%s\nconsole:\n%s", r.Error, r.Checks, r.Diagnostics, r.ConsoleTail)
	}
}

// poll runs f until it returns nil or the deadline passes.
func poll(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

func mustExec(ctx context.Context, g *imagetest.Guest, sh string) (string, error) {
	out, code, err := g.Exec(ctx, sh)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("%q: exit code %d: %s", sh, code, out)
	}
	return out, nil
}

// app-host, cron-runner and database, on one VM booted under UEFI: the
// multi-role example (an app and the jobs that serve it) with two more jobs
// and the app's own database, listening on loopback only. The app answers
// over HTTP and comes back after being killed; a job every minute runs at
// least twice and writes its marker; a job that outlives its timeout is
// killed and recorded as failed; the database's check runs inside the guest
// (nothing outside can reach it) with the user and password the seed made;
// every role's own checks pass. The image under test is never written.
func TestAppHostAndCronRunnerInVM(t *testing.T) {
	needVM(t)
	// The variant's cron-runner replaces the example's: it keeps its job
	// and adds two.
	recipe := variant(t, "multi-role.yaml", `name: app-cron-it
roles:
  - cron-runner:
      jobs:
        - {name: warm-cache, schedule: "*/5 * * * *", command: [curl, -fsS, -o, /dev/null, "http://127.0.0.1:8080/"], timeout: 1m}
        - {name: heartbeat, schedule: "* * * * *", command: "date -u >> /var/lib/heartbeat.log", timeout: 30s}
        - {name: overrun, schedule: "*:*:0/20", command: [sleep, "300"], timeout: 5s}
  - database:
      listen: ["127.0.0.1"]
      users: [{name: app, password: env:APP_DB_PASSWORD}]
      databases: [{name: appdb, owner: app}]
`)
	var before digest.Sum
	secrets := recipes.MapResolver(map[string]string{"env:APP_DB_PASSWORD": "app-db-secret"})
	r := bakeAndTestUnder(t, recipe, "uefi", func(img string) { before, _ = digest.File(img) }, imagetest.Options{Resolver: secrets, Inspect: func(ctx context.Context, g *imagetest.Guest) error {
		if err := noFirstBootWork(ctx, g); err != nil {
			return err
		}
		if err := bootTuningApplied(ctx, g); err != nil {
			return err
		}
		if err := appRestarts(ctx, g); err != nil {
			return fmt.Errorf("app-host: %w", err)
		}
		if err := cronJobsRun(ctx, g); err != nil {
			return fmt.Errorf("cron-runner: %w", err)
		}
		// The app's credentials work on the loopback listener.
		if out, err := mustExec(ctx, g, "PGPASSWORD=app-db-secret psql -h 127.0.0.1 -U app -d appdb -tAc 'select 40+2'"); err != nil || strings.TrimSpace(out) != "42" {
			return fmt.Errorf("database: %q %v", out, err)
		}
		return nil
	}})
	requireOK(t, r)
	names := map[string]bool{}
	for _, c := range r.Checks {
		names[c.Name] = c.OK
	}
	if !names["hello health"] || !names["cron warm-cache scheduled"] || !names["cron heartbeat scheduled"] || !names["postgresql ready"] {
		t.Errorf("every role's checks should have run and passed: %+v", r.Checks)
	}
	if _, ok := names["postgresql port"]; ok {
		t.Error("a database on loopback was probed from outside the guest")
	}
	if r.Firmware != "uefi" || r.CloudInit.Status != "done" || len(r.CloudInit.Errors) != 0 {
		t.Errorf("report %+v", r)
	}
	if after, _ := digest.File(r.Image); after != before {
		t.Error("booting the image changed it")
	}
}

// The other supported release runs the multi-role example under both
// firmwares, with the same recipe parameters: Debian 12 brings cloud-init
// 22.4 (one process per stage, tuned differently) and systemd 252.
func TestMultiRoleOnBookworm(t *testing.T) {
	needVM(t)
	recipe := variant(t, "multi-role.yaml", "name: multi-role-bookworm\nbase: debian:bookworm\n")
	var release string
	reports := bakeAndTestEach(t, recipe, []string{"bios", "uefi"}, func(img string) {
		m, err := manifest.Read(strings.TrimSuffix(img, ".qcow2") + ".manifest.json")
		if err != nil {
			t.Fatal(err)
		}
		release = m.OS.Release
	}, imagetest.Options{Inspect: func(ctx context.Context, g *imagetest.Guest) error {
		if err := noFirstBootWork(ctx, g); err != nil {
			return err
		}
		return bootTuningApplied(ctx, g)
	}})
	if release != "bookworm" {
		t.Fatalf("the image's release is %q", release)
	}
	for _, r := range reports {
		requireOK(t, r)
		if r.CloudInit.Status != "done" || len(r.Checks) < 2 {
			t.Errorf("%s: %+v", r.Firmware, r)
		}
	}
	if len(reports) != 2 || reports[0].Firmware != "bios" || reports[1].Firmware != "uefi" {
		t.Errorf("booted under %d firmwares: %+v", len(reports), reports)
	}
}

// firstBootUnits run at boot when /etc or /var is older than /usr
// (ConditionNeedsUpdate): a kiln image settles their work at bake time.
var firstBootUnits = []string{"ldconfig.service", "systemd-sysusers.service", "systemd-journal-catalog-update.service", "systemd-hwdb-update.service", "systemd-update-done.service"}

// noFirstBootWork: none of firstBootUnits ran at this first boot.
func noFirstBootWork(ctx context.Context, g *imagetest.Guest) error {
	out, err := mustExec(ctx, g, "systemctl show -p Id,LoadState,ExecMainStartTimestampMonotonic "+strings.Join(firstBootUnits, " "))
	if err != nil {
		return err
	}
	var ran []string
	for _, unit := range strings.Split(strings.TrimSpace(out), "\n\n") {
		props := map[string]string{}
		for _, l := range strings.Split(unit, "\n") {
			k, v, _ := strings.Cut(l, "=")
			props[k] = v
		}
		if props["LoadState"] == "loaded" && props["ExecMainStartTimestampMonotonic"] != "0" {
			ran = append(ran, props["Id"])
		}
	}
	if len(ran) > 0 {
		return fmt.Errorf("first boot ran work the bake should have done: %s", strings.Join(ran, ", "))
	}
	return nil
}

// bootTuningApplied: KVM was not loaded for nested virtualization, and
// systemd-resolved does no multicast name resolution (kiln's boot tuning).
func bootTuningApplied(ctx context.Context, g *imagetest.Guest) error {
	if out, err := mustExec(ctx, g, "ls /sys/module | grep -x -e kvm -e kvm_amd -e kvm_intel || true"); err != nil || strings.TrimSpace(out) != "" {
		return fmt.Errorf("KVM modules loaded at boot: %q %v", out, err)
	}
	// The kernel took boot tuning's command line (builder.tuningCmdline).
	if out, err := mustExec(ctx, g, "cat /sys/module/cryptomgr/parameters/notests"); err != nil || strings.TrimSpace(out) != "Y" {
		return fmt.Errorf("the kernel ran its crypto self-tests (cryptomgr.notests %q): %v", out, err)
	}
	// The global setting: a link's line shows its own (networkd's) setting,
	// which systemd 252 prints as +LLMNR although the global "no" wins.
	out, err := mustExec(ctx, g, "resolvectl status")
	if err != nil {
		return err
	}
	global, _, _ := strings.Cut(out, "\nLink ")
	if !strings.Contains(global, "-LLMNR") || !strings.Contains(global, "-mDNS") {
		return fmt.Errorf("systemd-resolved still does LLMNR or mDNS:\n%s", out)
	}
	return nil
}

// appRestarts: the app answers, and comes back after being killed.
func appRestarts(ctx context.Context, g *imagetest.Guest) error {
	pid, err := mustExec(ctx, g, "systemctl show -p MainPID --value hello")
	if err != nil {
		return err
	}
	pid = strings.TrimSpace(pid)
	if pid == "" || pid == "0" {
		return fmt.Errorf("hello has no main process")
	}
	if _, err := mustExec(ctx, g, "kill -9 "+pid); err != nil {
		return err
	}
	addr, _ := g.Addr(8080)
	return poll(ctx, time.Minute, func() error {
		now, _ := mustExec(ctx, g, "systemctl show -p MainPID --value hello")
		if now = strings.TrimSpace(now); now == pid || now == "0" {
			return fmt.Errorf("not restarted yet (MainPID %s)", now)
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// cronJobsRun: heartbeat runs at least twice and logs to the journal;
// overrun is killed at its timeout and recorded as failed.
func cronJobsRun(ctx context.Context, g *imagetest.Guest) error {
	err := poll(ctx, 4*time.Minute, func() error {
		out, err := mustExec(ctx, g, "cat /var/lib/kiln/cron/heartbeat.json && wc -l < /var/lib/heartbeat.log")
		if err != nil {
			return err
		}
		var res struct {
			OK   bool `json:"ok"`
			Runs int  `json:"runs"`
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[0]), &res); err != nil {
			return fmt.Errorf("result %q: %v", lines[0], err)
		}
		marks, _ := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
		if !res.OK || res.Runs < 2 || marks < 2 {
			return fmt.Errorf("heartbeat: %d runs recorded, %d markers so far", res.Runs, marks)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if out, err := mustExec(ctx, g, "journalctl --no-pager -t kiln-cron-heartbeat -t kiln-cron-overrun"); err != nil || !strings.Contains(out, "kiln-cron") {
		return fmt.Errorf("no job log in the journal: %v %s", err, out)
	}
	return poll(ctx, 2*time.Minute, func() error {
		out, err := mustExec(ctx, g, "cat /var/lib/kiln/cron/overrun.json")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"ok":false`) || !strings.Contains(out, `"result":"timeout"`) {
			return fmt.Errorf("overrun recorded as %s", out)
		}
		return nil
	})
}

// job-runner: the job runs once at first boot, the VM powers itself off,
// and the recorded result (console and disk) carries the job's exit code.
func TestRoleJobRunnerInVM(t *testing.T) {
	needVM(t)
	recipe := variant(t, "job-runner.yaml", `name: job-it
roles:
  - job-runner:
      script: |
        #!/bin/sh
        echo "processing $DATASET"
        exit 3
`)
	r := bakeAndTest(t, recipe, imagetest.Options{})
	if r.Job == nil {
		t.Fatalf("no job result: %s\n%s", r.Error, r.ConsoleTail)
	}
	if r.Job.ExitStatus != "3" || r.Job.OK || !strings.Contains(r.Job.Recorded, `"exitStatus":"3"`) {
		t.Fatalf("job result %+v, want exit status 3 on the console and on disk", r.Job)
	}
	if r.OK || !strings.Contains(r.Error, "exit status 3") {
		t.Errorf("a failing job passed kiln test: %+v", r)
	}
}

// database: a query over the forwarded port with the seed's credentials,
// the data on the data disk, a dump after its schedule, and the password
// nowhere in the image or the logs.
func TestRoleDatabaseInVM(t *testing.T) {
	needVM(t)
	psql := testutil.NeedTool(t, "psql")
	password := fmt.Sprintf("kiln-pw-%d", time.Now().UnixNano())
	recipe := variant(t, "database.yaml", `name: db-it
roles:
  - database:
      dataDisk: {device: /dev/vdb}
      dumps: {schedule: "* * * * *", keep: 2}
`)
	plan, err := recipes.LoadPlan(recipe)
	if err != nil {
		t.Fatal(err)
	}
	r := bakeAndTest(t, recipe, imagetest.Options{
		DataDisks: []int64{1 << 30},
		Resolver:  recipes.MapResolver(map[string]string{"env:APP_DB_PASSWORD": password}),
		Inspect: func(ctx context.Context, g *imagetest.Guest) error {
			addr, _ := g.Addr(5432)
			host, port, _ := net.SplitHostPort(addr)
			q := exec.CommandContext(ctx, psql, "-h", host, "-p", port, "-U", "app", "-d", "appdb", "-tAc", "select current_user || '@' || current_database()")
			q.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
			out, err := q.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "app@appdb" {
				return fmt.Errorf("SQL over the forwarded port: %v: %s", err, out)
			}
			// PostgreSQL serves TLS with this instance's own snake-oil
			// certificate: made at first boot with an ECDSA key (tuning),
			// named after the instance, its key readable by ssl-cert only.
			tlsq := exec.CommandContext(ctx, psql, "-h", host, "-p", port, "-U", "app", "-d", "appdb", "-tAc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
			tlsq.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=require")
			if out, err := tlsq.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "t" {
				return fmt.Errorf("SQL over TLS: %v: %s", err, out)
			}
			cert, err := mustExec(ctx, g, "hostname; stat -c '%a %U:%G' /etc/ssl/private/ssl-cert-snakeoil.key; openssl x509 -noout -subject -nameopt multiline -in /etc/ssl/certs/ssl-cert-snakeoil.pem; openssl x509 -noout -text -in /etc/ssl/certs/ssl-cert-snakeoil.pem | grep -c 'NIST CURVE: P-256'")
			if err != nil {
				return err
			}
			if f := strings.Fields(cert); len(f) < 7 || f[1] != "640" || f[2] != "root:ssl-cert" || f[len(f)-1] != "1" || !strings.Contains(cert, "commonName                = "+f[0]+"\n") {
				return fmt.Errorf("the snake-oil certificate is not this instance's ECDSA one (want: host name, 640 root:ssl-cert, CN = host name, one P-256 key):\n%s", cert)
			}
			bad := exec.CommandContext(ctx, psql, "-h", host, "-p", port, "-U", "app", "-d", "appdb", "-tAc", "select 1")
			bad.Env = append(os.Environ(), "PGPASSWORD=wrong", "PGCONNECT_TIMEOUT=10")
			if out, err := bad.CombinedOutput(); err == nil {
				return fmt.Errorf("a wrong password was accepted: %s", out)
			}
			if out, err := mustExec(ctx, g, "findmnt -n -o SOURCE /var/lib/postgresql"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "/dev/vdb") {
				return fmt.Errorf("the data directory is not on the data disk: %v %s", err, out)
			}
			if err := poll(ctx, 3*time.Minute, func() error {
				_, err := mustExec(ctx, g, "ls /var/backups/postgresql/dumpall-*.sql.gz")
				return err
			}); err != nil {
				return fmt.Errorf("no dump appeared: %v", err)
			}
			// The search must not leak what it looks for: sudo logs the
			// command line, so the password travels as printf escapes.
			needle := ""
			for _, c := range []byte(password) {
				needle += fmt.Sprintf("\\%03o", c)
			}
			out2, _, _ := g.Exec(ctx, "p=$(printf '"+needle+"'); grep -rlF \"$p\" /var/log /var/lib/cloud /etc /run/log /var/lib/postgresql 2>/dev/null; journalctl --no-pager -o cat | grep -cF \"$p\"")
			if strings.Contains(out2, "/") || strings.TrimSpace(out2) != "0" {
				return fmt.Errorf("the password shows up in the guest: %s", out2)
			}
			return nil
		},
	})
	requireOK(t, r)
	// And never in the image: every file of the baked root filesystem.
	b := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)})
	img := filepath.Join(t.TempDir(), "db.qcow2")
	if _, err := b.Bake(context.Background(), plan, img); err != nil {
		t.Fatal(err)
	}
	fsys, closer, err := disk.OpenRoot(img)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, _ := d.Info(); info == nil || info.Size() > 64<<20 {
			return nil
		}
		if b, err := fs.ReadFile(fsys, p); err == nil && strings.Contains(string(b), password) {
			t.Errorf("the password is in the image: /%s", p)
		}
		return nil
	})
}

// proxy: two backends both get requests; a stopped one leaves the rotation.
func TestRoleProxyInVM(t *testing.T) {
	needVM(t)
	var hits [2]atomic.Int64
	var servers [2]*http.Server
	var ports [2]int
	for i := range servers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		i := i
		servers[i] = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				hits[i].Add(1)
			}
			fmt.Fprintf(w, "backend-%d\n", i)
		})}
		go servers[i].Serve(l)
		defer servers[i].Close()
	}
	// The guest reaches the host's loopback as 10.0.2.2 (QEMU user networking).
	recipe := variant(t, "proxy.yaml", fmt.Sprintf(`name: proxy-it
roles:
  - proxy:
      frontends:
        - {name: web, listen: 80, balance: roundrobin, healthPath: /healthz, interval: 1s, fall: 2, rise: 1,
           servers: ["10.0.2.2:%d", "10.0.2.2:%d"]}
checks:
  - http: {port: 80, path: /, contains: backend-}
`, ports[0], ports[1]))
	r := bakeAndTest(t, recipe, imagetest.Options{Inspect: func(ctx context.Context, g *imagetest.Guest) error {
		addr, _ := g.Addr(80)
		get := func() (string, error) {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b := make([]byte, 64)
			n, _ := resp.Body.Read(b)
			if resp.StatusCode != 200 {
				return "", fmt.Errorf("status %d", resp.StatusCode)
			}
			return strings.TrimSpace(string(b[:n])), nil
		}
		h0, h1 := hits[0].Load(), hits[1].Load()
		for i := 0; i < 20; i++ {
			if _, err := get(); err != nil {
				return err
			}
		}
		if hits[0].Load() == h0 || hits[1].Load() == h1 {
			return fmt.Errorf("round robin reached only one backend: %d and %d requests", hits[0].Load()-h0, hits[1].Load()-h1)
		}
		servers[0].Close() // backend 0 goes away
		if err := poll(ctx, time.Minute, func() error {
			for i := 0; i < 10; i++ {
				body, err := get()
				if err != nil || body != "backend-1" {
					return fmt.Errorf("still routed to the stopped backend: %q %v", body, err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		return nil
	}})
	requireOK(t, r)
}

// network: the ruleset loads (a role check runs nft -c), forwarding is on,
// and dnsmasq on the LAN answers DNS for a configured host.
func TestRoleNetworkInVM(t *testing.T) {
	needVM(t)
	lan := boot.NIC{Net: "10.10.0.0/24", Forwards: []boot.Forward{{Proto: "udp", GuestAddr: "10.10.0.1", GuestPort: 53}}}
	r := bakeAndTest(t, "network.yaml", imagetest.Options{NICs: []boot.NIC{lan}, Inspect: func(ctx context.Context, g *imagetest.Guest) error {
		addr, err := g.AddrOn(1, "udp", 53)
		if err != nil {
			return err
		}
		if err := poll(ctx, time.Minute, func() error {
			ip, err := dnsQueryA(addr, "db.lan")
			if err != nil {
				return err
			}
			if ip != "10.10.0.5" {
				return fmt.Errorf("db.lan is %s, want 10.10.0.5", ip)
			}
			return nil
		}); err != nil {
			return err
		}
		// A name only the gateway's own resolver knows: dnsmasq forwards it
		// upstream, to systemd-resolved's stub, which answers _gateway with
		// the WAN's gateway (QEMU user networking's 10.0.2.2). Debian's
		// helper would point dnsmasq at a resolvconf file nobody writes.
		if ip, err := dnsQueryA(addr, "_gateway"); err != nil || ip != "10.0.2.2" {
			out, _, _ := g.Exec(ctx, "journalctl -b -u dnsmasq --no-pager | tail -20")
			return fmt.Errorf("dnsmasq did not forward _gateway upstream: got %q, %v\n%s", ip, err, out)
		}
		// Boot tuning started dnsmasq and sshd without their separate
		// configuration checks; a bad configuration still fails the unit,
		// as dnsmasq checks it when it starts.
		out, err := mustExec(ctx, g, "systemctl show -p ExecStartPre --value dnsmasq.service ssh.service")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("dnsmasq and ssh still run a start check: %v %q", err, out)
		}
		if out, code, err := g.Exec(ctx, "echo no-such-option >/etc/dnsmasq.d/zz-bad.conf; systemctl restart dnsmasq.service; echo rc=$?; systemctl is-failed dnsmasq.service"); err != nil || code != 0 || !strings.Contains(out, "rc=1") || !strings.Contains(out, "failed") {
			return fmt.Errorf("dnsmasq started with a bad configuration: %v %d %q", err, code, out)
		}
		_, err = mustExec(ctx, g, "rm /etc/dnsmasq.d/zz-bad.conf && systemctl restart dnsmasq.service && systemctl is-active dnsmasq.service")
		return err
	}})
	requireOK(t, r)
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("check %s: %s", c.Name, c.Detail)
		}
	}
}

// dnsQueryA asks a DNS server for name's A record.
func dnsQueryA(server, name string) (string, error) {
	conn, err := net.Dial("udp", server)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	q := []byte{0x4b, 0x1d, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0} // id, RD, one question
	for _, label := range strings.Split(name, ".") {
		q = append(append(q, byte(len(label))), label...)
	}
	q = append(q, 0, 0, 1, 0, 1) // root, type A, class IN
	if _, err := conn.Write(q); err != nil {
		return "", err
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp := make([]byte, 512)
	n, err := conn.Read(resp)
	if err != nil {
		return "", err
	}
	resp = resp[:n]
	if n < 12 || resp[0] != 0x4b || resp[1] != 0x1d {
		return "", fmt.Errorf("not an answer to our query")
	}
	if rcode := resp[3] & 0xf; rcode != 0 {
		return "", fmt.Errorf("DNS error code %d", rcode)
	}
	answers := binary.BigEndian.Uint16(resp[6:])
	off := len(q) // the question is echoed back
	for i := 0; i < int(answers) && off+12 <= n; i++ {
		if resp[off]&0xc0 == 0xc0 {
			off += 2
		} else {
			for off < n && resp[off] != 0 {
				off += int(resp[off]) + 1
			}
			off++
		}
		typ := binary.BigEndian.Uint16(resp[off:])
		rdlen := int(binary.BigEndian.Uint16(resp[off+8:]))
		off += 10
		if typ == 1 && rdlen == 4 && off+4 <= n {
			return net.IP(resp[off : off+4]).String(), nil
		}
		off += rdlen
	}
	return "", fmt.Errorf("no A record for %s in %d answers", name, answers)
}

// TestExamplesReproducible: every example bakes to the same bytes twice —
// the cached (or first) image against a bake from scratch, as kiln bake
// --check-reproducible does. On a difference, kiln diff's report says
// which files or packages.
func TestExamplesReproducible(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "debugfs", "qemu-img", "grub-mkimage", "unshare"} {
		testutil.NeedTool(t, tool)
	}
	ctx := context.Background()
	for _, f := range exampleFiles(t) {
		t.Run(strings.TrimSuffix(f, ".yaml"), func(t *testing.T) {
			plan, err := recipes.LoadPlan(f)
			if err != nil {
				t.Fatal(err)
			}
			b := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)})
			first, err := b.Bake(ctx, plan, filepath.Join(t.TempDir(), plan.Recipe.Name+"."+plan.Recipe.Disk.Format))
			if err != nil {
				t.Fatal(err)
			}
			r, err := b.CheckReproducible(ctx, plan, first)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Same {
				var diffs []string
				for _, p := range r.Diff.Packages {
					diffs = append(diffs, fmt.Sprintf("package %s %q -> %q", p.Name, p.From, p.To))
				}
				for _, c := range r.Diff.Files {
					diffs = append(diffs, fmt.Sprintf("%s %s %v", c.Change, c.Path, c.Fields))
				}
				t.Errorf("%s bakes to %s, then from scratch to %s; kiln diff: %q", f, r.Digest, r.Rebuilt, diffs)
			}
		})
	}
}
