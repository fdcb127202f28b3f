package recipes

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func planFile(t *testing.T, p *Plan, path string) string {
	t.Helper()
	for _, f := range append(append([]PlanFile{}, p.Files...), p.Deferred...) {
		if f.Path == path {
			return string(f.Content)
		}
	}
	t.Fatalf("plan writes no %s", path)
	return ""
}

func planUnit(t *testing.T, p *Plan, name string) Unit {
	t.Helper()
	for _, u := range p.Units {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("plan has no unit %s", name)
	return Unit{}
}

func contains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

func TestRoleAppHost(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - app-host:
      name: shop
      port: 80
      script: "#!/bin/sh\nexec true\n"
      env: {MODE: prod}
      memoryMax: 256MiB
      cpuQuota: 50%
`})
	u := planUnit(t, p, "shop.service")
	contains(t, "unit", u.Content, "After=network-online.target cloud-init.service cloud-init-network.service\n", "User=shop", "ExecStart=/opt/shop/app", "Restart=always", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "StateDirectory=shop", "MemoryMax=268435456", "CPUQuota=50%", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"EnvironmentFile=-/etc/shop/app.env", "Environment=PORT=80")
	contains(t, "env file", planFile(t, p, "/etc/shop/app.env"), `MODE="prod"`)
	contains(t, "script", planFile(t, p, "/opt/shop/app"), "exec true")
	if len(p.Users) != 1 || p.Users[0].Name != "shop" || !p.Users[0].System {
		t.Errorf("service user: %+v", p.Users)
	}
	if len(p.Checks) != 1 || p.Checks[0].HTTP == nil || p.Checks[0].HTTP.Port != 80 || p.Checks[0].HTTP.Path != "/healthz" {
		t.Errorf("health check: %+v", p.Checks)
	}
}

func TestRoleAppHostBind(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + "roles:\n  - app-host: {command: /bin/app, bind: 127.0.0.1}\n"})
	contains(t, "unit", planUnit(t, p, "app.service").Content, "Environment=PORT=8080\nEnvironment=HOST=127.0.0.1\n")
	p = loadPlan(t, map[string]string{"r.yaml": header + "roles:\n  - app-host: {command: /bin/app}\n"})
	if u := planUnit(t, p, "app.service").Content; strings.Contains(u, "HOST=") {
		t.Errorf("HOST set without bind:\n%s", u)
	}
}

func TestRoleAppHostSeedDelivery(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + "roles:\n  - app-host: {source: bin/app, deliver: seed}\n", "bin/app": "BINARY"})
	if len(p.Boot.Files) != 1 || p.Boot.Files[0].Path != "/opt/app/app" || string(p.Boot.Files[0].Content) != "BINARY" {
		t.Fatalf("seed-delivered app: %+v", p.Boot.Files)
	}
	for _, f := range p.Files {
		if f.Path == "/opt/app/app" {
			t.Fatal("seed-delivered app baked too")
		}
	}
}

func TestRoleCronRunner(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - cron-runner:
      jobs:
        - {name: tick, schedule: "*/2 * * * *", command: "echo 50% > /tmp/x", timeout: 30s, user: nobody}
`})
	svc := planUnit(t, p, "kiln-cron-tick.service")
	contains(t, "service", svc.Content, "Type=oneshot", "User=nobody", "TimeoutStartSec=30",
		`ExecStart=/bin/sh -c "echo 50%% > /tmp/x"`, "ExecStopPost=+/usr/local/lib/kiln/record-result tick")
	if *svc.Enable {
		t.Error("job service enabled: only its timer should be")
	}
	timer := planUnit(t, p, "kiln-cron-tick.timer")
	contains(t, "timer", timer.Content, "OnCalendar=*-*-* *:00,02,04", "AccuracySec=1s", "WantedBy=timers.target")
	if !*timer.Enable {
		t.Error("timer not enabled")
	}
	contains(t, "record-result", planFile(t, p, "/usr/local/lib/kiln/record-result"), "SERVICE_RESULT")
}

func TestRoleJobRunner(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - job-runner:
      command: [/usr/bin/env]
      env: {DATASET: d1}
      secretEnv: {TOKEN: env:T}
      powerOff: true
      timeout: 5m
`})
	u := planUnit(t, p, "kiln-job.service")
	contains(t, "unit", u.Content, "ExecStart=/usr/bin/env", "TimeoutStartSec=300", "ExecStopPost=+/usr/local/lib/kiln/job-done true",
		"ConditionPathExists=!/var/lib/kiln/job/result.json", "After=network-online.target cloud-final.service", "EnvironmentFile=-/etc/kiln/job/job.env")
	s, err := p.Seed(Instance{}, StageBoot, MapResolver(map[string]string{"env:T": "tkn"}))
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "seed", string(s.UserData), "/etc/kiln/job/job.env", `DATASET="d1"`, `TOKEN="tkn"`)
}

func TestRoleDatabase(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - database:
      listen: ["0.0.0.0"]
      port: 5433
      users: [{name: app, password: env:PW, createdb: true}]
      databases: [{name: appdb, owner: app}]
      dataDisk: {device: /dev/vdc}
      dumps: {schedule: "0 * * * *", keep: 3}
`})
	contains(t, "postgresql.conf", planFile(t, p, "/etc/kiln/database/postgresql.conf"), "listen_addresses = '0.0.0.0'", "port = 5433")
	contains(t, "pg_hba.conf", planFile(t, p, "/etc/kiln/database/pg_hba.conf"), "host    all             all             0.0.0.0/0               scram-sha-256")
	contains(t, "createcluster", planFile(t, p, "/etc/postgresql-common/createcluster.d/50-kiln.conf"), "create_main_cluster = false")
	contains(t, "dump timer", planUnit(t, p, "kiln-pg-dump.timer").Content, "OnCalendar=*-*-* *:00:00")
	contains(t, "dump service", planUnit(t, p, "kiln-pg-dump.service").Content, "pg-dump /var/backups/postgresql 3")
	s, err := p.Seed(Instance{}, StageBoot, MapResolver(map[string]string{"env:PW": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	ud := string(s.UserData)
	contains(t, "seed", ud, "CREATE ROLE", "LOGIN CREATEDB PASSWORD", "CREATE DATABASE %I OWNER %I", "'appdb', 'app'",
		"disk_setup", "/dev/vdc", "LABEL=pgdata", "/var/lib/postgresql", "/usr/local/lib/kiln/database-setup")
	if strings.Contains(ud, "s3cret") {
		t.Error("password in the seed")
	}
}

func TestRoleProxy(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - proxy:
      frontends:
        - {listen: 80, balance: leastconn, healthPath: /health, servers: ["10.0.2.2:8081", "10.0.2.2:8082"]}
        - {name: pg, listen: 5432, mode: tcp, servers: ["10.0.0.9:5432"]}
`})
	cfg := planFile(t, p, "/etc/haproxy/haproxy.cfg")
	contains(t, "haproxy.cfg", cfg, "frontend web", "bind *:80", "balance leastconn", "option httpchk GET /health",
		"server s0 10.0.2.2:8081", "server s1 10.0.2.2:8082", "frontend pg", "mode tcp", "bind *:5432", "stats uri /stats", "bind *:8404")
	if !strings.Contains(strings.Join(p.Packages, " "), "haproxy") {
		t.Error("haproxy not installed")
	}
}

func TestRoleNetwork(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - network:
      lan: {interface: eth1, address: 192.168.50.1/24}
      hosts: [{name: db, address: 192.168.50.5, mac: "52:54:00:12:34:56"}]
      allow: [{port: 443}]
`})
	nft := planFile(t, p, "/etc/nftables.conf")
	contains(t, "nftables.conf", nft, "policy drop", `oifname "eth0" masquerade`, `iifname "eth1" oifname "eth0" accept`, "tcp dport 443 accept")
	dns := planFile(t, p, "/etc/dnsmasq.d/kiln.conf")
	contains(t, "dnsmasq.conf", dns, "interface=eth1", "dhcp-range=192.168.50.100,192.168.50.200,12h", "dhcp-option=option:router,192.168.50.1",
		"host-record=db.lan,db,192.168.50.5", "dhcp-host=52:54:00:12:34:56,192.168.50.5,db")
	contains(t, "sysctl", planFile(t, p, "/etc/sysctl.d/90-kiln-forward.conf"), "net.ipv4.ip_forward = 1")
	contains(t, "dnsmasq drop-in", planFile(t, p, "/etc/systemd/system/dnsmasq.service.d/40-kiln-network.conf"), "[Service]", "IGNORE_RESOLVCONF=yes", "DNSMASQ_EXCEPT=lo")
	s, err := p.Seed(Instance{}, StageBoot, PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "network-config", string(s.NetworkConfig), "eth1:", "192.168.50.1/24", "eth0:", "dhcp4: true")
}

func TestRolesShareVM(t *testing.T) {
	// cron-runner and database both install record-result: same bytes, no conflict.
	p := loadPlan(t, map[string]string{"r.yaml": header + `roles:
  - cron-runner: {jobs: [{name: a, schedule: daily, command: "true"}]}
  - database: {users: [{name: app, password: env:PW}], dumps: {}}
`})
	n := 0
	for _, f := range p.Files {
		if f.Path == "/usr/local/lib/kiln/record-result" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("record-result written %d times", n)
	}
}

func TestRolesDocumented(t *testing.T) {
	for _, r := range Roles() {
		if r.Summary == "" || len(r.Params) == 0 {
			t.Errorf("role %s is undocumented", r.Name)
		}
		for _, p := range r.Params {
			if p.Doc == "" {
				t.Errorf("role %s parameter %s has no doc", r.Name, p.Name)
			}
		}
	}
	want := "app-host,cron-runner,database,job-runner,network,proxy"
	if got := strings.Join(RoleNames(), ","); got != want {
		t.Errorf("roles = %s, want %s", got, want)
	}
}

func TestSourceSymlinkEscape(t *testing.T) {
	dir := writeFiles(t, map[string]string{"r.yaml": header + "bake:\n  files:\n    - {path: /etc/x, source: link}\n"})
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPlan(filepath.Join(dir, "r.yaml"))
	if err == nil || !strings.Contains(err.Error(), "leads out of the recipe's directory") {
		t.Fatalf("symlink out of the recipe dir followed: %v", err)
	}
}

// checkLine shows a check on one line. In-guest probes kiln writes
// (timeout N bash -c SCRIPT KIND ARGS...) show as "guest KIND ARGS"; the
// scripts themselves are run for real by TestGuestProbes.
func checkLine(c Check) string {
	switch {
	case c.HTTP != nil:
		return fmt.Sprintf("%s: http :%d%s", c.Name, c.HTTP.Port, c.HTTP.Path)
	case c.TCP != nil:
		return fmt.Sprintf("%s: tcp :%d", c.Name, c.TCP.Port)
	case c.Command != nil:
		a := c.Command.Run.Argv
		if len(a) > 5 && a[0] == "timeout" && a[2] == "bash" && a[3] == "-c" {
			return fmt.Sprintf("%s: guest %s", c.Name, strings.Join(a[5:], " "))
		}
		return fmt.Sprintf("%s: $ %s", c.Name, c.Command.Run)
	}
	return c.Name + ": empty"
}

// TestRoleChecks: a role's checks follow the parameters that decide who can
// reach its service. kiln test and deploy probe http and tcp checks from the
// host, through a port forwarded to the guest's first interface; a service
// bound to loopback (or to particular addresses) is probed inside the guest.
func TestRoleChecks(t *testing.T) {
	const (
		pgReady   = "postgresql ready: $ pg_isready -q -h 127.0.0.1 -p 5432"
		haproxyOK = "haproxy config valid: $ haproxy -c -q -f /etc/haproxy/haproxy.cfg"
		nftOK     = "firewall ruleset valid: $ nft -c -f /etc/nftables.conf"
		dnsmasqOK = "dnsmasq running: $ systemctl is-active dnsmasq"
	)
	cases := []struct {
		name   string
		role   string // one entry of roles:
		inside bool   // nothing may be probed from the host
		want   []string
	}{
		{"app-host default", "app-host: {command: /bin/app}", false,
			[]string{"app health: http :8080/healthz"}},
		{"app-host on every IPv4 address", "app-host: {command: /bin/app, bind: 0.0.0.0}", false,
			[]string{"app health: http :8080/healthz"}},
		{"app-host on loopback", "app-host: {command: /bin/app, bind: 127.0.0.1, port: 9000, healthPath: /up}", true,
			[]string{"app health: guest http 127.0.0.1 9000 /up 200"}},
		{"app-host on IPv6 loopback", "app-host: {command: /bin/app, bind: \"::1\"}", true,
			[]string{"app health: guest http ::1 8080 /healthz 200"}},
		{"app-host on one address", "app-host: {command: /bin/app, bind: 10.0.0.5}", true,
			[]string{"app health: guest http 10.0.0.5 8080 /healthz 200"}},

		{"database default", "database", false,
			[]string{"postgresql port: tcp :5432", pgReady}},
		{"database on every IPv4 address", "database: {listen: [0.0.0.0]}", false,
			[]string{"postgresql port: tcp :5432", pgReady}},
		{"database on loopback", "database: {listen: [127.0.0.1], port: 5433}", true,
			[]string{"postgresql ready: $ pg_isready -q -h 127.0.0.1 -p 5433"}},
		{"database on localhost", "database: {listen: [localhost]}", true,
			[]string{"postgresql ready: $ pg_isready -q -h localhost -p 5432"}},
		{"database on both loopbacks", "database: {listen: [127.0.0.1, \"::1\"]}", true,
			[]string{"postgresql ready on 127.0.0.1: $ pg_isready -q -h 127.0.0.1 -p 5432", "postgresql ready on ::1: $ pg_isready -q -h ::1 -p 5432"}},
		{"database on the IPv6 wildcard only (PostgreSQL binds it IPv6-only)", "database: {listen: [\"::\"]}", true,
			[]string{"postgresql ready: $ pg_isready -q -h ::1 -p 5432"}},

		{"proxy default", "proxy: {frontends: [{listen: 80, servers: [10.0.0.1:80]}]}", false,
			[]string{"proxy web listening: tcp :80", "proxy stats: http :8404/healthz", haproxyOK}},
		{"proxy on the IPv6 wildcard (HAProxy accepts IPv4 there too)", "proxy: {frontends: [{listen: 80, bind: \"::\", servers: [10.0.0.1:80]}], stats: {port: 8404, path: /stats, bind: 0.0.0.0}}", false,
			[]string{"proxy web listening: tcp :80", "proxy stats: http :8404/healthz", haproxyOK}},
		{"proxy on loopback", "proxy: {frontends: [{listen: 80, bind: 127.0.0.1, servers: [10.0.0.1:80]}], stats: {port: 8404, path: /stats, bind: 127.0.0.1}}", true,
			[]string{"proxy web listening: guest tcp 127.0.0.1 80", "proxy stats: guest http 127.0.0.1 8404 /healthz 200", haproxyOK}},
		{"proxy without stats", "proxy: {frontends: [{listen: 80, bind: 127.0.0.1, servers: [10.0.0.1:80]}, {listen: 81, servers: [10.0.0.1:81]}], stats: null}", false,
			[]string{"proxy web listening: guest tcp 127.0.0.1 80", "proxy web2 listening: tcp :81", haproxyOK}},

		{"cron-runner listens on nothing", "cron-runner: {jobs: [{name: a, schedule: daily, command: \"true\"}]}", true,
			[]string{"cron a scheduled: $ systemctl is-enabled kiln-cron-a.timer"}},
		{"job-runner listens on nothing", "job-runner: {command: \"true\"}", true,
			[]string{"job finished: $ test -s /var/lib/kiln/job/result.json"}},

		{"network default", "network", true,
			[]string{nftOK, dnsmasqOK, "forwarding on: $ sysctl -n net.ipv4.ip_forward", "nat on: $ nft list table ip kiln_nat"}},
		{"network without forwarding and NAT", "network: {nat: false, forward: false}", true,
			[]string{nftOK, dnsmasqOK}},

		// The network role's firewall drops what allow does not open on the
		// first interface (eth0), where the host's probes arrive.
		{"app-host behind the firewall", "app-host: {command: /bin/app}\n  - network: {nat: false, forward: false}", true,
			[]string{"app health: guest http 127.0.0.1 8080 /healthz 200", nftOK, dnsmasqOK}},
		{"app-host with its port open on the WAN", "app-host: {command: /bin/app}\n  - network: {nat: false, forward: false, allow: [{port: 22}, {port: 8080, from: wan}]}", false,
			[]string{"app health: http :8080/healthz", nftOK, dnsmasqOK}},
		{"app-host with its port open on the LAN only", "app-host: {command: /bin/app}\n  - network: {nat: false, forward: false, allow: [{port: 22}, {port: 8080, from: lan}]}", true,
			[]string{"app health: guest http 127.0.0.1 8080 /healthz 200", nftOK, dnsmasqOK}},
		{"app-host with its port open over UDP only", "app-host: {command: /bin/app}\n  - network: {nat: false, forward: false, allow: [{port: 22}, {port: 8080, proto: udp}]}", true,
			[]string{"app health: guest http 127.0.0.1 8080 /healthz 200", nftOK, dnsmasqOK}},
		{"database behind a gateway whose LAN is eth0", "network: {wan: eth1, lan: {interface: eth0}, nat: false, forward: false, allow: [{port: 22, from: lan}, {port: 5432, from: wan}]}\n  - database", true,
			[]string{nftOK, dnsmasqOK, "postgresql port: guest tcp 127.0.0.1 5432", pgReady}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := loadPlan(t, map[string]string{"r.yaml": header + "roles:\n  - " + c.role + "\n"})
			var got []string
			for _, ch := range p.Checks {
				got = append(got, checkLine(ch))
				if c.inside && (ch.HTTP != nil || ch.TCP != nil) {
					t.Errorf("check %q probes from the host a service the parameters keep inside the guest", ch.Name)
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("checks:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// TestGuestProbes runs the in-guest probes the roles write, here on the
// host's loopback, against real listeners: they pass when the service
// answers as expected and fail otherwise.
func TestGuestProbes(t *testing.T) {
	for _, tool := range []string{"bash", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	closed := freePort(t)

	// run executes the one check a role gives and reports whether it passed.
	run := func(role string) (bool, string) {
		t.Helper()
		p := loadPlan(t, map[string]string{"r.yaml": header + "roles:\n  - " + role + "\n"})
		var ch *Check
		for i := range p.Checks {
			if p.Checks[i].Name == "app health" || p.Checks[i].Name == "proxy web listening" {
				ch = &p.Checks[i]
			}
		}
		if ch == nil || ch.Command == nil {
			t.Fatalf("%s: no in-guest check: %+v", role, p.Checks)
		}
		out, err := exec.Command("/bin/sh", "-c", ch.Command.Run.String()).CombinedOutput()
		return err == nil && strings.Contains(string(out), ch.Command.Contains), string(out)
	}
	app := func(port int, path string) string {
		return fmt.Sprintf("app-host: {command: /bin/app, bind: 127.0.0.1, port: %d, healthPath: %s}", port, path)
	}
	if ok, out := run(app(port, "/up")); !ok || !strings.Contains(out, "HTTP 200") {
		t.Errorf("http probe of a healthy app failed: %s", out)
	}
	if ok, out := run(app(port, "/other")); ok {
		t.Errorf("http probe passed on a 404: %s", out)
	}
	status = http.StatusServiceUnavailable
	if ok, out := run(app(port, "/up")); ok {
		t.Errorf("http probe passed on a 503: %s", out)
	}
	if ok, out := run(app(closed, "/up")); ok {
		t.Errorf("http probe passed with nothing listening: %s", out)
	}

	proxy := func(port int) string {
		return fmt.Sprintf("proxy: {frontends: [{listen: %d, bind: 127.0.0.1, servers: [10.0.0.1:80]}], stats: null}", port)
	}
	if ok, out := run(proxy(port)); !ok {
		t.Errorf("tcp probe of a listening port failed: %s", out)
	}
	if ok, out := run(proxy(closed)); ok {
		t.Errorf("tcp probe passed with nothing listening: %s", out)
	}
}

// freePort returns a loopback port nothing listens on (it did a moment ago).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
