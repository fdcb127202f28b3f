package recipes

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLiteralLooksLikeSecret: a literal value written exactly like a secret
// reference is written as it is; kiln says so, and names the field that
// would resolve it. Warnings do not fail the recipe.
func TestLiteralLooksLikeSecret(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to header
		want []string
	}{
		{"bake file content env:", "bake:\n  files:\n    - {path: /etc/x, content: \"env:DB_PASSWORD\"}\n",
			[]string{`r.yaml:5:31: bake.files[0].content: "env:DB_PASSWORD" is written literally; to use the environment variable, write secret: env:DB_PASSWORD (boot.files only)`}},
		{"bake file content file:", "bake:\n  files:\n    - path: /etc/x\n      content: file:./x.conf\n",
			[]string{`r.yaml:6:16: bake.files[0].content: "file:./x.conf" is written literally; to copy the file, write source: ./x.conf (a secret goes under boot.files as secret: file:./x.conf)`}},
		{"boot file content env:", "boot:\n  files:\n    - {path: /etc/x, content: env:TOKEN}\n",
			[]string{`r.yaml:5:31: boot.files[0].content: "env:TOKEN" is written literally; to use the environment variable, write secret: env:TOKEN instead`}},
		{"boot file content file:", "boot:\n  files:\n    - {path: /etc/x, content: file:/run/secrets/x}\n",
			[]string{`r.yaml:5:31: boot.files[0].content: "file:/run/secrets/x" is written literally; to read the file when the seed is written, write secret: file:/run/secrets/x instead`}},
		{"app-host env", "roles:\n  - app-host:\n      command: /bin/app\n      env: {MODE: prod, DB_PASSWORD: env:DB_PASSWORD}\n",
			[]string{`r.yaml:6:38: roles[0].app-host.env.DB_PASSWORD: "env:DB_PASSWORD" is written literally into /etc/app/app.env; to pass the value it refers to, move it to secretEnv: {DB_PASSWORD: env:DB_PASSWORD}`}},
		{"job-runner env", "roles:\n  - job-runner: {command: /bin/job, env: {KEY: \"file:./key\"}}\n",
			[]string{`r.yaml:4:48: roles[0].job-runner.env.KEY: "file:./key" is written literally into /etc/kiln/job/job.env; to pass the value it refers to, move it to secretEnv: {KEY: file:./key}`}},
		{"app-host script", "roles:\n  - app-host: {script: file:./app.py}\n",
			[]string{`r.yaml:4:24: roles[0].app-host.script: "file:./app.py" is installed literally as the program; to install the file, write source: ./app.py instead of script`}},
		{"job-runner script", "roles:\n  - job-runner: {script: file:./job.sh}\n",
			[]string{`r.yaml:4:26: roles[0].job-runner.script: "file:./job.sh" is installed literally as the program; to install the file, copy it with bake.files (source: ./job.sh) and set command to its path`}},
		{"unit content", "bake:\n  units:\n    - {name: app.service, content: file:./app.service}\n",
			[]string{`r.yaml:5:36: bake.units[0].content: "file:./app.service" is written literally as the unit file; to install the file, copy it with bake.files (path: /etc/systemd/system/app.service, source: ./app.service) and list the unit here without content`}},
		{"ordinary values", "bake:\n  files:\n    - {path: /etc/a, content: \"env: production\\n\"}\n    - {path: /etc/b, content: \"file:\"}\n    - {path: /etc/c, content: \"env:not a name\"}\n" +
			"    - {path: /etc/d, content: \"file:a b\"}\n    - {path: /etc/e, content: \"envoy:X\"}\nboot:\n  files:\n    - {path: /etc/f, secret: env:F}\n" +
			"roles:\n  - app-host: {command: /bin/app, env: {URL: \"https://example.com/x\"}, secretEnv: {T: env:T}}\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantWarnings(t, header+c.yaml, c.want) })
	}
}

// TestSeedCarriesRecipeWarnings: every seed rendered from a recipe repeats
// the recipe's warnings, so kiln recipe validate, render and seed show them.
func TestSeedCarriesRecipeWarnings(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + "boot:\n  files:\n    - {path: /etc/x, content: env:TOKEN}\n"})
	for _, stage := range []Stage{StageBoot, StageBake, StageFull} {
		s, err := p.Seed(Instance{}, stage, PlaceholderResolver())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Warnings) != 1 || !strings.HasSuffix(s.Warnings[0], `r.yaml:5:31: boot.files[0].content: "env:TOKEN" is written literally; to use the environment variable, write secret: env:TOKEN instead`) {
			t.Errorf("%s seed warnings: %q", stage, s.Warnings)
		}
	}
}

// TestFirewallWarnings: the network role's firewall drops what allow does
// not open on eth0, where kiln test's probes and SSH arrive. The recipe's own
// host-side checks and kiln test's login then cannot work; kiln says so.
func TestFirewallWarnings(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to header
		want []string
	}{
		{"defaults", "roles: [network]\nchecks:\n  - tcp: {port: 22}\n", nil},
		{"check on a closed port", "roles: [network]\nchecks:\n  - tcp: {port: 53}\n  - http: {port: 8080}\n  - command: {run: \"true\"}\n",
			[]string{
				`r.yaml:5:17: checks[0].tcp.port: the network role's firewall drops TCP port 53 on eth0, where kiln test probes from the host; open it (allow: [{port: 53, from: wan}]) or check inside the guest with a command check`,
				`r.yaml:6:18: checks[1].http.port: the network role's firewall drops TCP port 8080 on eth0, where kiln test probes from the host; open it (allow: [{port: 8080, from: wan}]) or check inside the guest with a command check`,
			}},
		{"SSH closed on eth0", "roles:\n  - network: {allow: [{port: 22, from: lan}]}\n",
			[]string{`r.yaml:4:22: roles[0].network.allow: TCP port 22 is not open on eth0, where kiln test logs in over SSH to wait for cloud-init and run command checks; add {port: 22, from: wan}`}},
		{"SSH closed, LAN on eth0", "roles:\n  - network: {wan: eth1, lan: {interface: eth0}, allow: []}\n",
			[]string{`r.yaml:4:57: roles[0].network.allow: TCP port 22 is not open on eth0, where kiln test logs in over SSH to wait for cloud-init and run command checks; add {port: 22, from: lan}`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantWarnings(t, header+c.yaml, c.want) })
	}
}

// wantWarnings loads and checks a recipe, which must be valid, and compares
// its warnings with want.
func wantWarnings(t *testing.T, recipe string, want []string) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"r.yaml": recipe})
	r, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range r.Warnings() {
		got = append(got, strings.ReplaceAll(w.Error(), dir+"/", ""))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
