package recipes

import (
	"sort"
	"strings"
	"time"
)

// Plan is a recipe compiled together with its roles: everything baked into
// the image, and everything each instance's seed carries. Builders bake from
// the image half; seeds are rendered from the boot half (see Instance).
type Plan struct {
	Recipe *Recipe

	// ImageKey is a digest of every input that shapes the image (base, bake
	// section, role contributions, disk); boot-only changes leave it alone.
	ImageKey string
	// Digest covers the whole recipe, boot section included.
	Digest string

	Packages []string // sorted, unique
	// PackageOrigins maps each package to the recipe path that asked for it.
	PackageOrigins map[string]string
	Users          []User
	Files          []PlanFile // written before packages are installed (owner root)
	Deferred       []PlanFile // written after packages and users exist
	Units          []Unit
	Commands       []PlanCommand

	Boot   BootPlan
	Checks []Check
}

// PlanFile is a file with its bytes resolved.
type PlanFile struct {
	Path    string
	Content []byte
	Mode    Mode
	Owner   string
	Origin  string // recipe path that asked for it, for messages
}

// PlanCommand is a command with the recipe path that asked for it.
type PlanCommand struct {
	Command
	Origin string
}

// BootPlan is what every instance gets at first boot.
type BootPlan struct {
	Hostname  string // pattern
	Timezone  string
	Users     []User
	Files     []BootFile
	Commands  []PlanCommand
	Network   *Network
	DataDisks []DataDisk
}

// BootFile is a file written by the seed. Its bytes are literal, a secret
// resolved when the seed is written, or rendered by a role from secrets.
type BootFile struct {
	Path    string
	Mode    Mode
	Owner   string
	Origin  string
	Content []byte
	Secret  Secret
	Render  func(resolve Resolver) ([]byte, error)
}

// HoldsSecret reports whether the file's bytes come from a secret.
func (f BootFile) HoldsSecret() bool { return f.Secret != "" || f.Render != nil }

// DataDisk is an extra disk formatted on first use and mounted.
type DataDisk struct {
	Device     string
	Filesystem string
	Label      string
	MountPoint string
	Origin     string
}

// contribution is the builder a role writes its part of the plan through.
type contribution struct {
	plan   *Plan
	origin string // the role's path, e.g. roles[0].database
	recipe *Recipe
}

func (c *contribution) packages(names ...string) {
	c.plan.Packages = append(c.plan.Packages, names...)
	for _, n := range names {
		c.plan.addOrigin(n, c.origin)
	}
}

func (p *Plan) addOrigin(pkg, origin string) {
	if p.PackageOrigins == nil {
		p.PackageOrigins = map[string]string{}
	}
	if _, ok := p.PackageOrigins[pkg]; !ok {
		p.PackageOrigins[pkg] = origin
	}
}

func (c *contribution) file(path string, mode Mode, content string) {
	c.plan.Files = append(c.plan.Files, PlanFile{Path: path, Content: []byte(content), Mode: mode, Owner: "root:root", Origin: c.origin})
}

func (c *contribution) ownedFile(path string, mode Mode, owner, content string) {
	c.plan.Deferred = append(c.plan.Deferred, PlanFile{Path: path, Content: []byte(content), Mode: mode, Owner: owner, Origin: c.origin})
}

func (c *contribution) user(u User) { c.plan.Users = append(c.plan.Users, u) }

func (c *contribution) unit(name, content string, enable bool) {
	c.plan.Units = append(c.plan.Units, Unit{Name: name, Content: content, Enable: &enable})
}

func (c *contribution) command(cmd Command) {
	c.plan.Commands = append(c.plan.Commands, PlanCommand{Command: cmd, Origin: c.origin})
}

func (c *contribution) bootFile(f BootFile) {
	f.Origin = c.origin
	c.plan.Boot.Files = append(c.plan.Boot.Files, f)
}

func (c *contribution) bootCommand(cmd Command) {
	c.plan.Boot.Commands = append(c.plan.Boot.Commands, PlanCommand{Command: cmd, Origin: c.origin})
}

func (c *contribution) check(ch Check) {
	ch.Origin = c.origin
	c.plan.Checks = append(c.plan.Checks, ch)
}

func uniqueSorted(in []string) []string {
	m := map[string]bool{}
	var out []string
	for _, s := range in {
		if !m[s] {
			m[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// BootOrigins are the recipe paths that configure something at first boot
// beyond the host name — users, files, commands, network, data disks: the
// recipe's boot section ("boot") and the roles that contribute to it
// ("roles[0].database"). A check from one of them needs the recipe's own
// instance seed to mean anything.
func (p *Plan) BootOrigins() []string {
	set := map[string]bool{}
	root := func(origin string) string {
		if strings.HasPrefix(origin, "boot.") || origin == "boot" {
			return "boot"
		}
		if i := strings.Index(origin, "]."); strings.HasPrefix(origin, "roles[") && i > 0 {
			if j := strings.IndexAny(origin[i+2:], ".["); j >= 0 {
				return origin[:i+2+j]
			}
		}
		return origin
	}
	if len(p.Boot.Users) > 0 || p.Boot.Network != nil && p.Recipe.Boot.Network != nil || p.Boot.Timezone != "" {
		set["boot"] = true
	}
	for _, f := range p.Boot.Files {
		set[root(f.Origin)] = true
	}
	for _, c := range p.Boot.Commands {
		set[root(c.Origin)] = true
	}
	for _, d := range p.Boot.DataDisks {
		set[root(d.Origin)] = true
	}
	return sortedKeys(set)
}

// NeedsBoot reports whether check c can mean anything only with the
// recipe's own instance seed: it comes from a role that configures
// something at first boot, or from the recipe's checks when its boot
// section does.
func (p *Plan) NeedsBoot(c Check) bool {
	origins := p.BootOrigins()
	for _, o := range origins {
		if o == c.Origin || (o == "boot" && strings.HasPrefix(c.Origin, "checks[")) {
			return true
		}
	}
	return false
}

// PowerOffJob returns the timeout of the role job that powers the VM off
// when it is done (the job-runner role with powerOff), and whether there is
// one: such an instance is tested by waiting for it to stop.
func (p *Plan) PowerOffJob() (time.Duration, bool) {
	for _, r := range p.Recipe.Roles {
		if j, ok := r.Params.(*JobRunner); ok && j.PowerOff {
			return j.Timeout.D(), true
		}
	}
	return 0, false
}
