package builder

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/recipes"
)

// offlineBake applies a plan's image half to a root tree without booting
// it: users, files, packages, owned files, units, then commands — the order
// cloud-init applies the same plan in a VM bake. Services are kept from
// starting on the build host by policy-rc.d and by running in a chroot.
type offlineBake struct {
	plan   *recipes.Plan
	root   root
	chroot *chroot
	step   *progress.Step
}

func (o *offlineBake) run(ctx context.Context) error {
	if err := o.prepare(); err != nil {
		return err
	}
	for _, u := range o.plan.Users {
		if err := o.user(ctx, u); err != nil {
			return err
		}
	}
	if err := o.files(o.plan.Files); err != nil {
		return err
	}
	if err := o.packages(ctx); err != nil {
		return err
	}
	if err := o.files(o.plan.Deferred); err != nil {
		return err
	}
	if err := o.units(ctx); err != nil {
		return err
	}
	for _, c := range o.plan.Commands {
		o.step.Note("run " + truncate(c.String(), 60))
		argv := c.Argv
		if argv == nil {
			argv = []string{"/bin/sh", "-c", c.Shell}
		}
		if _, err := o.chroot.run(ctx, fmt.Sprintf("%s: command %q", c.Origin, truncate(c.String(), 80)), nil, argv...); err != nil {
			return err
		}
	}
	return nil
}

// prepare lets package scripts run without starting anything: policy-rc.d
// forbids service starts, and the build host's resolver is used for
// downloads (sysprep puts the image's own back).
func (o *offlineBake) prepare() error {
	if err := o.root.writeFile("/usr/sbin/policy-rc.d", []byte("#!/bin/sh\n# kiln: no service starts while baking\nexit 101\n"), 0o755, 0, 0); err != nil {
		return err
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	return o.root.writeFile("/etc/resolv.conf", resolv, 0o644, 0, 0)
}

func (o *offlineBake) user(ctx context.Context, u recipes.User) error {
	o.step.Note("user " + u.Name)
	if _, err := o.root.lookupID("/etc/passwd", u.Name); err == nil {
		return nil // a package or an earlier entry created it
	}
	for _, g := range u.Groups {
		if _, err := o.chroot.run(ctx, "groupadd "+g, nil, "groupadd", "-f", g); err != nil {
			return err
		}
	}
	args := []string{"useradd"}
	if u.System {
		args = append(args, "--system", "--no-create-home", "--home-dir", "/nonexistent")
	} else {
		args = append(args, "--create-home")
	}
	shell := u.Shell
	if shell == "" {
		shell = "/bin/bash"
		if u.System {
			shell = "/usr/sbin/nologin"
		}
	}
	args = append(args, "--shell", shell, "--user-group")
	if u.UID != 0 {
		args = append(args, "--uid", strconv.Itoa(u.UID))
	}
	if len(u.Groups) > 0 {
		args = append(args, "--groups", strings.Join(u.Groups, ","))
	}
	args = append(args, u.Name)
	if _, err := o.chroot.run(ctx, "useradd "+u.Name, nil, args...); err != nil {
		return err
	}
	if u.Sudo {
		rule := fmt.Sprintf("# Written by kiln\n%s ALL=(ALL) NOPASSWD:ALL\n", u.Name)
		if err := o.root.writeFile("/etc/sudoers.d/90-kiln-"+u.Name, []byte(rule), 0o440, 0, 0); err != nil {
			return err
		}
	}
	if len(u.SSHAuthorizedKeys) > 0 && !u.System {
		uid, gid, err := o.root.owner(u.Name)
		if err != nil {
			return err
		}
		home := "/home/" + u.Name
		if err := o.root.mkdirAll(home + "/.ssh"); err != nil {
			return err
		}
		if host, err := o.root.resolve(home + "/.ssh"); err == nil {
			os.Chown(host, uid, gid)
			os.Chmod(host, 0o700)
		}
		keys := strings.Join(u.SSHAuthorizedKeys, "\n") + "\n"
		if err := o.root.writeFile(home+"/.ssh/authorized_keys", []byte(keys), 0o600, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func (o *offlineBake) files(files []recipes.PlanFile) error {
	for _, f := range files {
		uid, gid, err := o.root.owner(f.Owner)
		if err != nil {
			return fmt.Errorf("%s: %v", f.Origin, err)
		}
		if err := o.root.writeFile(f.Path, f.Content, os.FileMode(f.Mode), uid, gid); err != nil {
			return fmt.Errorf("%s: %v", f.Origin, err)
		}
	}
	return nil
}

var (
	aptUnknownRE  = lazyre.New(`E: Unable to locate package (\S+)`)
	aptNoCandRE   = lazyre.New(`E: (?:Package|Version) '([^']+)' has no installation candidate`)
	aptNotFoundRE = lazyre.New(`E: Version '([^']+)' for '([^']+)' was not found`)
	aptProgressRE = lazyre.New(`^(Get:\d+|Unpacking|Setting up) (\S+)`)
)

// packages installs the plan's packages. A dry run comes first, so an
// unknown package is reported by name, with the recipe line that asked for
// it, before anything is installed or any disk is made.
func (o *offlineBake) packages(ctx context.Context) error {
	if len(o.plan.Packages) == 0 {
		return nil
	}
	base := []string{"apt-get", "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef", "-o", "APT::Install-Recommends=false", "-y"}
	simulate := func() (string, error) {
		out, err := o.chroot.run(ctx, "apt-get install --simulate", nil, append(append(base, "install", "--simulate"), o.plan.Packages...)...)
		return out + errOutput(err), err
	}
	install := func() (string, error) {
		out, err := o.chroot.run(ctx, "apt-get install", func(l string) {
			if m := aptProgressRE.FindStringSubmatch(l); m != nil && m[1] == "Setting up" {
				o.step.Note("set up " + m[2])
			}
		}, append(append(base, "install"), o.plan.Packages...)...)
		return out + errOutput(err), err
	}
	// The base carries the package lists it was built with. When they are
	// stale (a package newer than the base, a version the mirror dropped),
	// refresh them once and try again.
	refreshed := false
	refresh := func() error {
		refreshed = true
		o.step.Note("refreshing package lists")
		_, err := o.chroot.run(ctx, "apt-get update", nil, "apt-get", "-q", "update")
		return err
	}
	out, err := simulate()
	if err != nil && len(unknownPackages(out)) > 0 {
		if err := refresh(); err != nil {
			return err
		}
		out, err = simulate()
	}
	if err != nil {
		if unknown := unknownPackages(out); len(unknown) > 0 {
			return o.unknownPackagesError(unknown)
		}
		return err
	}
	o.step.Note(fmt.Sprintf("installing %d packages: %s", len(o.plan.Packages), truncate(strings.Join(o.plan.Packages, " "), 80)))
	out, err = install()
	if err != nil && !refreshed && strings.Contains(out, "Failed to fetch") {
		if err := refresh(); err != nil {
			return err
		}
		_, err = install()
	}
	return err
}

func unknownPackages(out string) []string {
	set := map[string]bool{}
	for _, re := range []*lazyre.Regexp{aptUnknownRE, aptNoCandRE} {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			set[m[1]] = true
		}
	}
	for _, m := range aptNotFoundRE.FindAllStringSubmatch(out, -1) {
		set[m[2]+"="+m[1]] = true
	}
	var names []string
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (o *offlineBake) unknownPackagesError(names []string) error {
	var errs recipes.ErrorList
	for _, n := range names {
		origin := o.plan.PackageOrigins[n]
		if origin == "" {
			origin = o.plan.PackageOrigins[strings.SplitN(n, "=", 2)[0]]
		}
		errs = append(errs, &recipes.Error{Pos: o.plan.Recipe.Position(origin), Path: origin,
			Msg: fmt.Sprintf("unknown package %q: the %s archive has no such package (check the name with apt-cache search)", n, o.plan.Recipe.Base)})
	}
	return errs.Err()
}

func (o *offlineBake) units(ctx context.Context) error {
	var enable []string
	for _, u := range o.plan.Units {
		if u.Content != "" {
			if err := o.root.writeFile("/etc/systemd/system/"+u.Name, []byte(u.Content), 0o644, 0, 0); err != nil {
				return err
			}
		}
		if u.Enable == nil || *u.Enable {
			enable = append(enable, u.Name)
		}
	}
	if len(enable) == 0 {
		return nil
	}
	o.step.Note("enable " + strings.Join(enable, " "))
	_, err := o.chroot.run(ctx, "systemctl enable "+strings.Join(enable, " "), nil, append([]string{"systemctl", "enable"}, enable...)...)
	return err
}

func errOutput(err error) string {
	if ce, ok := err.(*commandError); ok {
		return ce.Output
	}
	return ""
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
