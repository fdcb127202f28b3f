package recipes

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/lazyre"
)

func init() {
	registerRole(roleDef{
		name:    "app-host",
		summary: "runs an app as a hardened systemd service with its own user, env, restart policy, limits and a health endpoint",
		new: func() RoleParams {
			return &AppHost{Name: "app", Port: 8080, HealthPath: "/healthz", Restart: "always",
				RestartSec: Duration(2 * time.Second), Deliver: "image"}
		},
	})
}

// AppHost is the app-host role: one long-running service.
type AppHost struct {
	Name       string            `yaml:"name" doc:"service name; also the user it runs as unless user is set"`
	User       string            `yaml:"user" doc:"user the service runs as (created as a system user); default: name"`
	Command    Command           `yaml:"command" doc:"command that starts the app; default: the installed script or source"`
	Script     string            `yaml:"script" doc:"program text installed as /opt/<name>/app (give it a #! line)"`
	Source     string            `yaml:"source" doc:"file beside the recipe installed as /opt/<name>/<file name>"`
	Deliver    string            `yaml:"deliver" doc:"where script/source travel: image (baked) or seed (per instance)"`
	Packages   []string          `yaml:"packages" doc:"packages the app needs at run time (e.g. python3)"`
	Port       int               `yaml:"port" doc:"port the app listens on; passed to it as $PORT"`
	Bind       string            `yaml:"bind" doc:"address the app is told to listen on, as $HOST; unset means every address; on loopback the app serves only the VM and its check runs inside the guest"`
	HealthPath string            `yaml:"healthPath" doc:"HTTP path that answers 200 when the app is healthy"`
	Env        map[string]string `yaml:"env" doc:"environment variables (not secret), baked into /etc/<name>/app.env"`
	SecretEnv  map[string]Secret `yaml:"secretEnv" doc:"environment from secrets (env:NAME, file:PATH), written by the seed to /etc/<name>/secret.env, mode 0600"`
	WorkingDir string            `yaml:"workingDir" doc:"working directory, writable by the app; default /var/lib/<name>"`
	Restart    string            `yaml:"restart" doc:"always or on-failure"`
	RestartSec Duration          `yaml:"restartSec" doc:"pause before a restart"`
	MemoryMax  Size              `yaml:"memoryMax" doc:"memory limit (systemd MemoryMax); none by default"`
	CPUQuota   string            `yaml:"cpuQuota" doc:"CPU limit like 50% or 200% (systemd CPUQuota)"`
	TasksMax   int               `yaml:"tasksMax" doc:"limit on processes and threads"`
}

var cpuQuotaRE = lazyre.New(`^[1-9][0-9]*%$`)

func (a *AppHost) validate(v *validator) {
	if !userRE.MatchString(a.Name) {
		v.errorf("name", "invalid service name %q (lower-case letters, digits, _ and -)", a.Name)
	}
	if a.User != "" && !userRE.MatchString(a.User) {
		v.errorf("user", "invalid user name %q", a.User)
	}
	n := 0
	for _, set := range []bool{!a.Command.Empty(), a.Script != "", a.Source != ""} {
		if set {
			n++
		}
	}
	if n == 0 {
		v.errorf("command", "missing the app: give command, script or source")
	}
	if a.Script != "" && a.Source != "" {
		v.errorf("script", "give script or source, not both")
	}
	if a.Source != "" {
		v.localPath("source", a.Source, false)
	}
	if kind, target, ok := literalRef(a.Script); ok && kind == "file" {
		v.warnf("script", "%q is installed literally as the program; to install the file, write source: %s instead of script", a.Script, target)
	}
	if a.Deliver != "image" && a.Deliver != "seed" {
		v.errorf("deliver", "unknown value %q (want image or seed)", a.Deliver)
	}
	v.packages("packages", a.Packages)
	v.port("port", a.Port)
	if a.Bind != "" {
		if _, err := netip.ParseAddr(a.Bind); err != nil {
			v.errorf("bind", "invalid address %q (want an IP address such as 127.0.0.1, or leave bind out for every address)", a.Bind)
		}
	}
	if len(a.HealthPath) == 0 || a.HealthPath[0] != '/' {
		v.errorf("healthPath", "path %q must start with /", a.HealthPath)
	}
	v.environment("env", a.Env, "/etc/"+a.Name+"/app.env", "secretEnv", a.SecretEnv)
	if a.WorkingDir != "" {
		v.guestPath("workingDir", a.WorkingDir)
	}
	if a.Restart != "always" && a.Restart != "on-failure" {
		v.errorf("restart", "unknown restart policy %q (want always or on-failure)", a.Restart)
	}
	if a.CPUQuota != "" && !cpuQuotaRE.MatchString(a.CPUQuota) {
		v.errorf("cpuQuota", "invalid CPU quota %q (want a percentage like 50%%)", a.CPUQuota)
	}
	if a.TasksMax < 0 {
		v.errorf("tasksMax", "must not be negative")
	}
}

func (a *AppHost) contribute(c *contribution) error {
	user := a.User
	if user == "" {
		user = a.Name
	}
	workdir := a.WorkingDir
	if workdir == "" {
		workdir = "/var/lib/" + a.Name
	}
	c.packages(a.Packages...)
	c.user(User{Name: user, System: true, Shell: "/usr/sbin/nologin"})

	cmd := a.Command
	var program []byte
	var programPath string
	switch {
	case a.Script != "":
		program, programPath = []byte(a.Script), "/opt/"+a.Name+"/app"
	case a.Source != "":
		b, err := c.recipe.ReadLocal(a.Source)
		if err != nil {
			return err
		}
		program, programPath = b, "/opt/"+a.Name+"/"+path.Base(a.Source)
	}
	if programPath != "" {
		if a.Deliver == "seed" {
			c.bootFile(BootFile{Path: programPath, Mode: 0o755, Owner: "root:root", Content: program})
		} else {
			c.plan.Files = append(c.plan.Files, PlanFile{Path: programPath, Content: program, Mode: 0o755, Owner: "root:root", Origin: c.origin})
		}
		if cmd.Empty() {
			cmd = Command{Argv: []string{programPath}}
		}
	}
	if len(a.Env) > 0 {
		c.file("/etc/"+a.Name+"/app.env", 0o644, "# Written by kiln (role app-host)\n"+envFile(a.Env))
	}
	if len(a.SecretEnv) > 0 {
		c.bootFile(secretEnvFile("/etc/"+a.Name+"/secret.env", a.SecretEnv))
	}
	unit, err := render("app-host.service", map[string]any{
		"Name": a.Name, "User": user, "WorkingDir": workdir, "StateDir": stateDir(workdir),
		"Port": a.Port, "Host": a.Bind, "Command": cmd, "Restart": a.Restart, "RestartSec": a.RestartSec,
		"LowPort": a.Port < 1024, "MemoryMax": memoryMax(a.MemoryMax), "CPUQuota": a.CPUQuota, "TasksMax": a.TasksMax,
	})
	if err != nil {
		return err
	}
	c.unit(a.Name+".service", unit, true)
	if stateDir(workdir) == "" {
		// Outside /var/lib systemd will not create it: tmpfiles.d does, at boot.
		c.file("/etc/tmpfiles.d/"+a.Name+".conf", 0o644, fmt.Sprintf("d %s 0750 %s %s -\n", workdir, user, user))
	}
	c.check(httpCheck(a.Name+" health", a.Bind, true, a.Port, a.HealthPath, 200))
	return nil
}

// stateDir is the StateDirectory= for a working dir under /var/lib, so
// systemd creates it owned by the service user; "" otherwise.
func stateDir(workdir string) string {
	rel, _ := strings.CutPrefix(workdir, "/var/lib/")
	if rel == workdir {
		return ""
	}
	return rel
}

func memoryMax(s Size) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("%d", int64(s))
}
