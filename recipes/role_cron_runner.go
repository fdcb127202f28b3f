package recipes

import (
	"fmt"
	"time"
)

func init() {
	registerRole(roleDef{
		name:    "cron-runner",
		summary: "runs named jobs on schedules (cron or systemd calendar syntax) as systemd timers, with timeouts, no overlapping runs, journal logs and a recorded last result",
		new:     func() RoleParams { return &CronRunner{} },
	})
}

// CronRunner is the cron-runner role.
type CronRunner struct {
	Jobs []CronJob `yaml:"jobs" doc:"the scheduled jobs"`
}

// CronJob is one scheduled job.
type CronJob struct {
	Name        string   `yaml:"name" doc:"job name: lower-case letters, digits and dashes"`
	Schedule    string   `yaml:"schedule" doc:"cron (\"*/5 * * * *\", \"@daily\") or systemd calendar (\"daily\", \"Mon..Fri 02:00\") syntax"`
	Command     Command  `yaml:"command" doc:"command to run"`
	User        string   `yaml:"user" doc:"user to run as; default root"`
	Timeout     Duration `yaml:"timeout" doc:"a run longer than this is killed and recorded as failed; default 1h"`
	Persistent  bool     `yaml:"persistent" doc:"run at boot when a scheduled run was missed while the VM was off"`
	RandomDelay Duration `yaml:"randomDelay" doc:"random delay added to each run, to spread load"`
}

func (cr *CronRunner) validate(v *validator) {
	if len(cr.Jobs) == 0 {
		v.errorf("jobs", "list at least one job (name, schedule, command)")
	}
	seen := map[string]bool{}
	for i, j := range cr.Jobs {
		p := fmt.Sprintf("jobs[%d]", i)
		switch {
		case j.Name == "":
			v.errorf(p+".name", "missing required field name")
		case !nameRE.MatchString(j.Name):
			v.errorf(p+".name", "invalid job name %q (lower-case letters, digits and dashes)", j.Name)
		case seen[j.Name]:
			v.errorf(p+".name", "job %q is defined twice", j.Name)
		}
		seen[j.Name] = true
		if _, err := OnCalendar(j.Schedule); err != nil {
			v.errorf(p+".schedule", "%v", err)
		}
		if j.Command.Empty() {
			v.errorf(p+".command", "missing required field command")
		}
		if j.User != "" && !userRE.MatchString(j.User) {
			v.errorf(p+".user", "invalid user name %q", j.User)
		}
	}
}

func (cr *CronRunner) contribute(c *contribution) error {
	c.file("/usr/local/lib/kiln/record-result", 0o755, asset("record-result"))
	for _, j := range cr.Jobs {
		cal, err := OnCalendar(j.Schedule)
		if err != nil {
			return err
		}
		user, timeout := j.User, j.Timeout
		if user == "" {
			user = "root"
		}
		if timeout == 0 {
			timeout = Duration(time.Hour)
		}
		data := map[string]any{"Name": j.Name, "User": user, "Command": j.Command, "Timeout": timeout,
			"Schedule": j.Schedule, "OnCalendar": cal, "Persistent": j.Persistent, "RandomDelay": j.RandomDelay}
		svc, err := render("cron-job.service", data)
		if err != nil {
			return err
		}
		timer, err := render("cron-job.timer", data)
		if err != nil {
			return err
		}
		c.unit("kiln-cron-"+j.Name+".service", svc, false)
		c.unit("kiln-cron-"+j.Name+".timer", timer, true)
		c.check(Check{Name: "cron " + j.Name + " scheduled",
			Command: &CommandCheck{Run: Command{Argv: []string{"systemctl", "is-enabled", "kiln-cron-" + j.Name + ".timer"}}}})
	}
	return nil
}
