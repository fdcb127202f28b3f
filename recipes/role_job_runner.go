package recipes

import (
	"strconv"
	"time"
)

func init() {
	registerRole(roleDef{
		name:    "job-runner",
		summary: "runs one job once at first boot with parameters from the seed, records its exit status and output, and can power the VM off when done",
		new: func() RoleParams {
			return &JobRunner{Timeout: Duration(time.Hour), User: "root"}
		},
	})
}

// JobRunner is the job-runner role.
type JobRunner struct {
	Command   Command           `yaml:"command" doc:"the job; default: the installed script"`
	Script    string            `yaml:"script" doc:"program text installed as /opt/kiln-job/job (give it a #! line)"`
	Packages  []string          `yaml:"packages" doc:"packages the job needs"`
	Env       map[string]string `yaml:"env" doc:"job parameters as environment variables, delivered by the seed (per instance)"`
	SecretEnv map[string]Secret `yaml:"secretEnv" doc:"secret parameters (env:NAME, file:PATH), delivered by the seed, mode 0600"`
	User      string            `yaml:"user" doc:"user the job runs as"`
	Timeout   Duration          `yaml:"timeout" doc:"a job running longer is killed and recorded as failed"`
	PowerOff  bool              `yaml:"powerOff" doc:"power the VM off when the job has finished, whatever its result"`
}

func (j *JobRunner) validate(v *validator) {
	if j.Command.Empty() && j.Script == "" {
		v.errorf("command", "missing the job: give command or script")
	}
	if !userRE.MatchString(j.User) {
		v.errorf("user", "invalid user name %q", j.User)
	}
	if j.Timeout <= 0 {
		v.errorf("timeout", "timeout must be positive")
	}
	v.packages("packages", j.Packages)
	v.environment("env", j.Env, "/etc/kiln/job/job.env", "secretEnv", j.SecretEnv)
	if kind, target, ok := literalRef(j.Script); ok && kind == "file" {
		v.warnf("script", "%q is installed literally as the program; to install the file, copy it with bake.files (source: %s) and set command to its path", j.Script, target)
	}
}

func (j *JobRunner) contribute(c *contribution) error {
	c.packages(j.Packages...)
	cmd := j.Command
	if j.Script != "" {
		c.file("/opt/kiln-job/job", 0o755, j.Script)
		if cmd.Empty() {
			cmd = Command{Argv: []string{"/opt/kiln-job/job"}}
		}
	}
	c.file("/usr/local/lib/kiln/job-done", 0o755, asset("job-done"))
	workdir := "/var/lib/kiln/job"
	if j.User != "root" {
		workdir = "/tmp"
	}
	unit, err := render("job-runner.service", map[string]any{
		"User": j.User, "WorkingDir": workdir, "Command": cmd, "Timeout": j.Timeout, "PowerOff": strconv.FormatBool(j.PowerOff),
	})
	if err != nil {
		return err
	}
	c.unit("kiln-job.service", unit, true)
	c.command(Command{Argv: []string{"mkdir", "-p", "/var/lib/kiln/job"}})
	if len(j.Env) > 0 {
		c.bootFile(BootFile{Path: "/etc/kiln/job/job.env", Mode: 0o644, Owner: "root:root", Content: []byte(envFile(j.Env))})
	}
	if len(j.SecretEnv) > 0 {
		c.bootFile(secretEnvFile("/etc/kiln/job/secret.env", j.SecretEnv))
	}
	c.check(Check{Name: "job finished",
		Command: &CommandCheck{Run: Command{Argv: []string{"test", "-s", "/var/lib/kiln/job/result.json"}}}})
	return nil
}
