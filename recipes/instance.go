package recipes

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kiln-project/kiln/cloudinit"
)

// Stage selects what a seed's user-data carries.
type Stage string

const (
	// StageBoot is the per-instance part only: for images kiln baked.
	StageBoot Stage = "boot"
	// StageBake is the bake section as cloud-config: what a VM bake applies
	// to an existing cloud image.
	StageBake Stage = "bake"
	// StageFull is both: configures a stock cloud image entirely at first boot.
	StageFull Stage = "full"
)

// ParseStage reads a stage name.
func ParseStage(s string) (Stage, error) {
	switch Stage(s) {
	case StageBoot, StageBake, StageFull:
		return Stage(s), nil
	}
	return "", fmt.Errorf("unknown stage %q (want boot, bake or full)", s)
}

// Instance names one VM made from a recipe.
type Instance struct {
	Name  string // default: the recipe name
	Index int
	// ExtraUsers are added to the recipe's boot users, e.g. the ephemeral
	// user kiln test logs in as.
	ExtraUsers []User
	// ID overrides the instance-id (derived from the recipe otherwise),
	// e.g. to make a VM bake's seed unique per build.
	ID string
	// Hostname overrides the hostname pattern.
	Hostname string
	// AppendFiles and AppendCommands come after everything else the stage
	// writes and runs (a VM bake's own finishing steps).
	AppendFiles    []PlanFile
	AppendCommands []Command
	// EarlyCommands run first, at every boot, before anything else the
	// stage does (cloud-init's bootcmd): a VM bake's preparation.
	EarlyCommands []Command
}

// Seed is the NoCloud documents of one instance.
type Seed struct {
	InstanceID string
	Hostname   string
	UserData   []byte
	MetaData   []byte
	// NetworkConfig is nil when neither the recipe nor a role configures
	// networking: cloud-init then brings up DHCP on the first interface (its
	// fallback), whatever the image names it and whichever network stack it
	// renders for — no written config does that on every image.
	NetworkConfig []byte
	// HoldsSecrets is true when any secret was resolved into the user-data;
	// whoever writes the seed must make it readable by its owner only.
	HoldsSecrets bool
	// Warnings are things that work but deserve a look: the recipe's own
	// (Recipe.Warnings, as file:line:col: path: message), then keys the
	// guest's cloud-init would ignore.
	Warnings []string
}

// Seed renders the NoCloud documents for one instance and validates them
// against cloud-init's schemas. Secrets are resolved here and only here.
func (p *Plan) Seed(inst Instance, stage Stage, resolve Resolver) (*Seed, error) {
	if inst.Name == "" {
		inst.Name = p.Recipe.Name
	}
	if !hostnameRE.MatchString(inst.Name) {
		return nil, fmt.Errorf("instance name %q is not valid: lower-case letters, digits and dashes, at most 63", inst.Name)
	}
	pattern := p.Boot.Hostname
	if inst.Hostname != "" {
		pattern = inst.Hostname
	}
	host, err := ExpandHostname(pattern, p.Recipe.Name, inst.Name, inst.Index)
	if err != nil {
		return nil, &Error{Pos: p.Recipe.pos("boot.hostname"), Path: "boot.hostname", Msg: err.Error()}
	}
	sum := sha256.Sum256([]byte(p.Digest + "\x00" + string(stage) + "\x00" + inst.Name))
	s := &Seed{InstanceID: "i-" + hex.EncodeToString(sum[:8]), Hostname: host}
	if inst.ID != "" {
		s.InstanceID = inst.ID
	}
	for _, w := range p.Recipe.warnings {
		s.Warnings = append(s.Warnings, w.Error())
	}

	cfg := &cloudinit.Config{}
	origins := map[string]string{} // JSON pointer prefix -> recipe path
	if stage == StageBake || stage == StageFull {
		p.bakeConfig(cfg, origins, stage == StageFull)
	}
	if stage == StageBoot || stage == StageFull {
		if err := p.bootConfig(cfg, origins, host, inst.ExtraUsers, resolve, s); err != nil {
			return nil, err
		}
	}
	for _, f := range inst.AppendFiles {
		cfg.WriteFiles = append(cfg.WriteFiles, cloudFile(f.Path, f.Content, f.Mode, f.Owner, f.Owner != "root:root"))
	}
	for _, c := range inst.AppendCommands {
		cfg.Runcmd = append(cfg.Runcmd, cloudCommand(c))
	}
	if len(inst.EarlyCommands) > 0 {
		early := make([]cloudinit.Command, 0, len(inst.EarlyCommands)+len(cfg.Bootcmd))
		for _, c := range inst.EarlyCommands {
			early = append(early, cloudCommand(c))
		}
		cfg.Bootcmd = append(early, cfg.Bootcmd...)
	}
	if s.UserData, err = cfg.Render(); err != nil {
		return nil, err
	}
	if err := p.checkSchema(s, origins); err != nil {
		return nil, err
	}
	// Local mode: nothing a kiln seed does at init (users, keys, files,
	// hostname, local data disks) needs the network, and applying it all
	// before networking starts saves a guest one of cloud-init's stages
	// and a network restart (kiln images skip the network stage then).
	if s.MetaData, err = (cloudinit.MetaData{InstanceID: s.InstanceID, LocalHostname: host, DSMode: "local"}).Render(); err != nil {
		return nil, err
	}
	if p.Boot.Network != nil {
		if s.NetworkConfig, err = p.networkConfig().Render(); err != nil {
			return nil, err
		}
		if probs, err := cloudinit.ValidateNetwork(s.NetworkConfig); err != nil {
			return nil, err
		} else if len(probs) > 0 {
			return nil, &Error{Pos: p.Recipe.pos("boot.network"), Path: "boot.network", Msg: "network-config rejected by cloud-init's schema: " + probs[0].String()}
		}
	}
	return s, nil
}

// bakeConfig renders the bake section as cloud-config, in the order the
// offline bake applies it: users, files, packages, owned files, units,
// commands. start also starts enabled units (a stock image configured at
// first boot must run them now; a bake must not).
func (p *Plan) bakeConfig(cfg *cloudinit.Config, origins map[string]string, start bool) {
	// SSH logins by key only, baked in: kiln images set this in sshd's
	// config, so boot seeds need not (see builder's tuning).
	cfg.SSHPasswordAuth = cloudinit.Bool(false)
	for i, u := range p.Users {
		origins[fmt.Sprintf("/users/%d", len(cfg.Users))] = fmt.Sprintf("bake.users[%d]", i)
		cfg.Users = append(cfg.Users, cloudUser(u, ""))
	}
	for _, f := range p.Files {
		origins[fmt.Sprintf("/write_files/%d", len(cfg.WriteFiles))] = f.Origin
		cfg.WriteFiles = append(cfg.WriteFiles, cloudFile(f.Path, f.Content, f.Mode, f.Owner, false))
	}
	for _, f := range p.Deferred {
		origins[fmt.Sprintf("/write_files/%d", len(cfg.WriteFiles))] = f.Origin
		cfg.WriteFiles = append(cfg.WriteFiles, cloudFile(f.Path, f.Content, f.Mode, f.Owner, true))
	}
	if len(p.Packages) > 0 {
		cfg.PackageUpdate = cloudinit.Bool(true)
		cfg.Packages = p.Packages
	}
	var enable []string
	for _, u := range p.Units {
		if u.Content != "" {
			cfg.WriteFiles = append(cfg.WriteFiles, cloudFile("/etc/systemd/system/"+u.Name, []byte(u.Content), 0o644, "root:root", true))
		}
		if u.Enable == nil || *u.Enable {
			enable = append(enable, u.Name)
		}
	}
	if len(p.Units) > 0 {
		cfg.Runcmd = append(cfg.Runcmd, cloudinit.Command{Argv: []string{"systemctl", "daemon-reload"}})
	}
	if len(enable) > 0 {
		argv := []string{"systemctl", "enable"}
		if start {
			argv = append(argv, "--now")
		}
		cfg.Runcmd = append(cfg.Runcmd, cloudinit.Command{Argv: append(argv, enable...)})
	}
	for _, c := range p.Commands {
		origins[fmt.Sprintf("/runcmd/%d", len(cfg.Runcmd))] = c.Origin
		cfg.Runcmd = append(cfg.Runcmd, cloudCommand(c.Command))
	}
}

func (p *Plan) bootConfig(cfg *cloudinit.Config, origins map[string]string, host string, extra []User, resolve Resolver, s *Seed) error {
	cfg.Hostname = host
	cfg.ManageEtcHosts = cloudinit.Bool(true)
	cfg.Timezone = p.Boot.Timezone
	for i, u := range append(append([]User{}, p.Boot.Users...), extra...) {
		path := fmt.Sprintf("boot.users[%d]", i)
		hash := ""
		if u.PasswordHash != "" {
			v, err := resolveLine(resolve, u.PasswordHash)
			if err != nil {
				return &Error{Pos: p.Recipe.pos(path + ".passwordHash"), Path: path + ".passwordHash", Msg: err.Error()}
			}
			if !cryptRE.MatchString(v) {
				return &Error{Pos: p.Recipe.pos(path + ".passwordHash"), Path: path + ".passwordHash",
					Msg: fmt.Sprintf("%s does not hold a crypt(3) hash; store the output of `mkpasswd -m sha-512` there, never the password", u.PasswordHash)}
			}
			hash = v
			s.HoldsSecrets = true
		}
		origins[fmt.Sprintf("/users/%d", len(cfg.Users))] = path
		cfg.Users = append(cfg.Users, cloudUser(u, hash))
	}
	for _, f := range p.Boot.Files {
		content := f.Content
		switch {
		case f.Secret != "":
			b, err := resolve(f.Secret)
			if err != nil {
				return &Error{Pos: p.Recipe.pos(f.Origin + ".secret"), Path: f.Origin + ".secret", Msg: err.Error()}
			}
			content = b
			s.HoldsSecrets = true
		case f.Render != nil:
			b, err := f.Render(resolve)
			if err != nil {
				return &Error{Pos: p.Recipe.pos(f.Origin), Path: f.Origin, Msg: err.Error()}
			}
			content = b
			s.HoldsSecrets = true
		}
		origins[fmt.Sprintf("/write_files/%d", len(cfg.WriteFiles))] = f.Origin
		// Owned files wait for the users and packages that own them.
		cfg.WriteFiles = append(cfg.WriteFiles, cloudFile(f.Path, content, f.Mode, f.Owner, f.Owner != "root:root"))
	}
	for _, d := range p.Boot.DataDisks {
		if cfg.DiskSetup == nil {
			cfg.DiskSetup = map[string]cloudinit.DiskSetup{}
		}
		cfg.DiskSetup[d.Device] = cloudinit.DiskSetup{TableType: "gpt", Layout: true, Overwrite: false}
		cfg.FSSetup = append(cfg.FSSetup, cloudinit.FSSetup{Label: d.Label, Filesystem: d.Filesystem, Device: d.Device, Partition: "auto"})
		cfg.Mounts = append(cfg.Mounts, []string{"LABEL=" + d.Label, d.MountPoint, d.Filesystem, "defaults,nofail,x-systemd.device-timeout=30s", "0", "2"})
	}
	for _, c := range p.Boot.Commands {
		origins[fmt.Sprintf("/runcmd/%d", len(cfg.Runcmd))] = c.Origin
		cfg.Runcmd = append(cfg.Runcmd, cloudCommand(c.Command))
	}
	return nil
}

func (p *Plan) networkConfig() cloudinit.Network {
	n := p.Boot.Network
	out := cloudinit.Network{Version: 2, Ethernets: map[string]cloudinit.Ethernet{}}
	for name, e := range n.Ethernets {
		ce := cloudinit.Ethernet{DHCP4: e.DHCP4, DHCP6: e.DHCP6, Addresses: e.Addresses, MTU: e.MTU}
		if e.Match != nil {
			ce.Match = &cloudinit.Match{Name: e.Match.Name, MACAddress: e.Match.MACAddress, Driver: e.Match.Driver}
		}
		if e.Gateway4 != "" {
			ce.Routes = []cloudinit.Route{{To: "0.0.0.0/0", Via: e.Gateway4}}
		}
		if e.Nameservers != nil {
			ce.Nameservers = &cloudinit.Nameservers{Addresses: e.Nameservers.Addresses, Search: e.Nameservers.Search}
		}
		out.Ethernets[name] = ce
	}
	return out
}

// checkSchema validates the user-data against the strict upstream schema and
// maps problems back to the recipe lines that produced them; keys the guest's
// older cloud-init would ignore become warnings.
func (p *Plan) checkSchema(s *Seed, origins map[string]string) error {
	probs, err := cloudinit.Upstream.ValidateUserData(s.UserData)
	if err != nil {
		return err
	}
	var errs ErrorList
	for _, pr := range probs {
		path := originOf(pr.Pointer, origins)
		errs = append(errs, &Error{Pos: p.Recipe.pos(path), Path: path,
			Msg: fmt.Sprintf("rendered cloud-config rejected by cloud-init's schema at %s: %s", orRoot(pr.Pointer), pr.Message)})
	}
	if err := errs.Err(); err != nil {
		return err
	}
	ignored, err := cloudinit.Debian12.IgnoredKeys(s.UserData)
	if err != nil {
		return err
	}
	for _, k := range ignored {
		s.Warnings = append(s.Warnings, fmt.Sprintf("user-data key %q is unknown to cloud-init %s (Debian 12): such a guest ignores it", k, cloudinit.Debian12.Version))
	}
	return nil
}

func originOf(pointer string, origins map[string]string) string {
	for q := pointer; q != ""; q = q[:strings.LastIndex(q, "/")] {
		if o, ok := origins[q]; ok {
			return o
		}
	}
	return ""
}

func orRoot(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

func cloudUser(u User, hash string) cloudinit.User {
	cu := cloudinit.User{Name: u.Name, Shell: u.Shell, System: u.System, UID: u.UID, SSHAuthorizedKeys: u.SSHAuthorizedKeys}
	if cu.Shell == "" && !u.System {
		cu.Shell = "/bin/bash"
	}
	if len(u.Groups) > 0 {
		cu.Groups = strings.Join(u.Groups, ",")
	}
	if u.Sudo {
		cu.Sudo = "ALL=(ALL) NOPASSWD:ALL"
	}
	if u.System {
		cu.NoCreateHome = true
	}
	cu.LockPasswd = cloudinit.Bool(hash == "")
	cu.Passwd = hash
	return cu
}

// cloudFile writes text as is and anything else base64-encoded, so binary
// files survive YAML.
func cloudFile(path string, content []byte, mode Mode, owner string, deferred bool) cloudinit.File {
	f := cloudinit.File{Path: path, Owner: owner, Permissions: "0" + fmt.Sprintf("%o", uint32(mode)), Defer: deferred}
	if utf8.Valid(content) && !strings.ContainsRune(string(content), 0) && !strings.ContainsRune(string(content), '\r') {
		f.Content = string(content)
	} else {
		f.Encoding = "b64"
		f.Content = base64.StdEncoding.EncodeToString(content)
	}
	return f
}

func cloudCommand(c Command) cloudinit.Command {
	if c.Argv != nil {
		return cloudinit.Command{Argv: c.Argv}
	}
	return cloudinit.Command{Shell: c.Shell}
}
