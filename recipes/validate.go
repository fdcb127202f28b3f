package recipes

import (
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
)

// validator collects every problem in a recipe, each placed at the line of
// the field it concerns.
type validator struct {
	r      *Recipe
	prefix string // roles validate with paths relative to their entry
	errs   *ErrorList
	warns  *ErrorList // things that work but deserve a look
}

func (v *validator) errorf(path, format string, args ...any) {
	*v.errs = append(*v.errs, v.problem(path, format, args...))
}

func (v *validator) warnf(path, format string, args ...any) {
	*v.warns = append(*v.warns, v.problem(path, format, args...))
}

func (v *validator) problem(path, format string, args ...any) *Error {
	full := path
	if v.prefix != "" {
		full = v.prefix + "." + path
		if strings.HasPrefix(path, "[") {
			full = v.prefix + path
		}
	}
	return &Error{Pos: v.r.pos(full), Path: full, Msg: fmt.Sprintf(format, args...)}
}

// sub returns a validator whose paths are relative to prefix.
func (v *validator) sub(prefix string) *validator {
	return &validator{r: v.r, prefix: prefix, errs: v.errs, warns: v.warns}
}

// pos returns where a field path was written, or its nearest written parent.
func (r *Recipe) pos(p string) Pos {
	if r.source == nil {
		return Pos{}
	}
	for q := p; ; {
		if ps, ok := r.source.pos[q]; ok {
			return ps
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
	}
	return Pos{File: r.source.file, Line: 1, Col: 1}
}

// Warnings are what the last Validate found that works but deserves a look,
// such as a literal value written exactly like a secret reference. They are
// placed like errors (file:line:col: path: message), in file order. Every
// Seed rendered from the recipe carries them too, as text.
func (r *Recipe) Warnings() []*Error { return append([]*Error(nil), r.warnings...) }

// Position returns where a field path of the recipe was written.
func (r *Recipe) Position(path string) Pos { return r.pos(path) }

// File is the recipe file as given to Load.
func (r *Recipe) File() string {
	if r.source == nil {
		return ""
	}
	return r.source.file
}

// Dir is the directory relative references resolve against.
func (r *Recipe) Dir() string {
	if r.source == nil {
		return "."
	}
	return r.source.dir
}

// Files lists every file the recipe was read from: itself, then what it extends.
func (r *Recipe) Files() []string {
	if r.source == nil {
		return nil
	}
	return append([]string{}, r.source.files...)
}

var (
	nameRE     = lazyre.New(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	userRE     = lazyre.New(`^[a-z_][a-z0-9_-]{0,31}$`)
	packageRE  = lazyre.New(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)
	unitRE     = lazyre.New(`^[A-Za-z0-9:_.@-]+\.(service|timer|socket|path|mount|automount|target|slice)$`)
	envNameRE  = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
	cryptRE    = lazyre.New(`^\$(1|5|6|y|gy|2[abxy]?|7)\$[^\s:]+$`)
	timezoneRE = lazyre.New(`^(UTC|[A-Z][A-Za-z_+-]*(/[A-Za-z0-9_+-]+){0,2})$`)
	sha256RE   = lazyre.New(`^[0-9a-f]{64}$`)
	sshKeyRE   = lazyre.New(`^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$`)
)

// Validate checks a defaulted recipe and returns every problem as an
// ErrorList, or nil. What works but deserves a look it keeps as the
// recipe's Warnings.
func Validate(r *Recipe) error {
	v := &validator{r: r, errs: &ErrorList{}, warns: &ErrorList{}}
	defer func() { r.warnings = sortByPos(*v.warns) }()
	if r.APIVersion == "" {
		v.errorf("apiVersion", "missing required field apiVersion (add apiVersion: %s)", APIVersion)
	} else if r.APIVersion != APIVersion {
		v.errorf("apiVersion", "unsupported apiVersion %q (this kiln reads %s)", r.APIVersion, APIVersion)
	}
	if r.Kind != "Recipe" {
		v.errorf("kind", "kind is %q, want Recipe", r.Kind)
	}
	switch {
	case r.Name == "":
		v.errorf("name", "missing required field name (a short image name like web or db-primary)")
	case !nameRE.MatchString(r.Name):
		v.errorf("name", "invalid name %q: use lower-case letters, digits and dashes, at most 63 characters", r.Name)
	}
	v.base("base", r.Base)
	v.bake(&r.Bake)
	v.boot(&r.Boot)
	v.checks("checks", r.Checks)
	v.disk(&r.Disk)
	v.roles()
	return (*v.errs).Err()
}

func (v *validator) base(p, base string) {
	b, err := ParseBase(base)
	if err != nil {
		v.errorf(p, "%v", err)
		return
	}
	switch b.Kind {
	case BaseFile:
		v.localPath(p, b.Path, true)
	}
}

func (v *validator) bake(b *Bake) {
	switch b.Mode {
	case "auto", "offline", "vm":
	default:
		v.errorf("bake.mode", "unknown bake mode %q (want auto, offline or vm)", b.Mode)
	}
	if b.Mirror != "" && !strings.HasPrefix(b.Mirror, "http://") && !strings.HasPrefix(b.Mirror, "https://") && !strings.HasPrefix(b.Mirror, "file:/") {
		v.errorf("bake.mirror", "mirror %q is not a URL (http://, https:// or file:/)", b.Mirror)
	}
	v.packages("bake.packages", b.Packages)
	v.files("bake.files", b.Files, false)
	v.users("bake.users", b.Users, false)
	for i, u := range b.Units {
		p := fmt.Sprintf("bake.units[%d]", i)
		if !unitRE.MatchString(u.Name) {
			v.errorf(p+".name", "invalid unit name %q (want a name like myapp.service or backup.timer)", u.Name)
		}
		if kind, target, ok := literalRef(u.Content); ok && kind == "file" {
			v.warnf(p+".content", "%q is written literally as the unit file; to install the file, copy it with bake.files (path: /etc/systemd/system/%s, source: %s) "+
				"and list the unit here without content", u.Content, u.Name, target)
		}
	}
	v.commands("bake.commands", b.Commands)
}

func (v *validator) boot(b *Boot) {
	if _, err := ExpandHostname(b.Hostname, "recipe", "instance-1", 1); err != nil {
		v.errorf("boot.hostname", "%v", err)
	}
	if b.Timezone != "" && !timezoneRE.MatchString(b.Timezone) {
		v.errorf("boot.timezone", "invalid time zone %q (want an IANA name like UTC or Europe/Berlin)", b.Timezone)
	}
	v.files("boot.files", b.Files, true)
	v.users("boot.users", b.Users, true)
	v.commands("boot.commands", b.Commands)
	if b.Network != nil {
		v.network("boot.network", b.Network)
	}
}

func (v *validator) files(p string, files []File, boot bool) {
	seen := map[string]string{}
	for i, f := range files {
		fp := fmt.Sprintf("%s[%d]", p, i)
		v.guestPath(fp+".path", f.Path)
		if prev, dup := seen[f.Path]; dup && f.Path != "" {
			v.errorf(fp+".path", "%s is also written by %s", f.Path, prev)
		}
		seen[f.Path] = fp
		n := 0
		if f.Content != nil {
			n++
			v.literalContent(fp+".content", *f.Content, boot)
		}
		if f.Source != "" {
			n++
			v.localPath(fp+".source", f.Source, false)
		}
		if f.Secret != "" {
			n++
			if !boot {
				v.errorf(fp+".secret", "secrets are never baked into an image; move this file to boot.files so the seed delivers it")
			} else {
				v.secretRef(fp+".secret", f.Secret)
			}
		}
		if n != 1 {
			v.errorf(fp, "give exactly one of content, source or secret")
		}
		v.owner(fp+".owner", f.Owner)
	}
}

func (v *validator) users(p string, users []User, boot bool) {
	for i, u := range users {
		up := fmt.Sprintf("%s[%d]", p, i)
		if !userRE.MatchString(u.Name) {
			v.errorf(up+".name", "invalid user name %q (lower-case letters, digits, _ and -, starting with a letter, at most 32)", u.Name)
		}
		if u.Password != "" {
			v.errorf(up+".password", "plain-text passwords are refused; store a crypt hash instead: "+
				"run `mkpasswd -m sha-512` (Debian package whois) or `openssl passwd -6`, and set passwordHash: '$6$...' "+
				"(or passwordHash: env:NAME to take the hash from the environment when the seed is written)")
		}
		if u.PasswordHash != "" {
			if !boot {
				v.errorf(up+".passwordHash", "password hashes are per instance and never baked; move this user's passwordHash to boot.users")
			} else if _, _, ref := u.PasswordHash.Ref(); !ref && !cryptRE.MatchString(string(u.PasswordHash)) {
				v.errorf(up+".passwordHash", "not a crypt(3) hash; plain-text passwords are refused: "+
					"hash it with `mkpasswd -m sha-512` or `openssl passwd -6` and paste the $6$... result, or use env:NAME / file:PATH")
			} else if ref {
				v.secretRef(up+".passwordHash", u.PasswordHash)
			}
		}
		if u.Shell != "" && !path.IsAbs(u.Shell) {
			v.errorf(up+".shell", "shell %q must be an absolute path like /bin/bash", u.Shell)
		}
		for j, g := range u.Groups {
			if !userRE.MatchString(g) {
				v.errorf(fmt.Sprintf("%s.groups[%d]", up, j), "invalid group name %q", g)
			}
		}
		for j, k := range u.SSHAuthorizedKeys {
			if !sshKeyRE.MatchString(strings.TrimSpace(k)) {
				v.errorf(fmt.Sprintf("%s.sshAuthorizedKeys[%d]", up, j), "not an OpenSSH public key (want a line like \"ssh-ed25519 AAAA... comment\")")
			}
		}
	}
}

func (v *validator) commands(p string, cmds []Command) {
	for i, c := range cmds {
		if c.Empty() {
			v.errorf(fmt.Sprintf("%s[%d]", p, i), "empty command")
		}
	}
}

func (v *validator) checks(p string, checks []Check) {
	for i, c := range checks {
		cp := fmt.Sprintf("%s[%d]", p, i)
		n := 0
		if c.HTTP != nil {
			n++
			v.port(cp+".http.port", c.HTTP.Port)
			if c.HTTP.Status < 100 || c.HTTP.Status > 599 {
				v.errorf(cp+".http.status", "HTTP status %d is not in 100-599", c.HTTP.Status)
			}
			if !strings.HasPrefix(c.HTTP.Path, "/") {
				v.errorf(cp+".http.path", "path %q must start with /", c.HTTP.Path)
			}
		}
		if c.TCP != nil {
			n++
			v.port(cp+".tcp.port", c.TCP.Port)
		}
		if c.Command != nil {
			n++
			if c.Command.Run.Empty() {
				v.errorf(cp+".command.run", "missing required field run (the command to run in the guest)")
			}
		}
		if n != 1 {
			v.errorf(cp, "a check needs exactly one of http, tcp or command")
		}
	}
}

func (v *validator) disk(d *Disk) {
	if d.Size < 1<<30 || d.Size > 16<<40 {
		v.errorf("disk.size", "disk size %s is out of range (1GiB to 16TiB)", d.Size)
	}
	switch d.Format {
	case "qcow2", "raw":
	default:
		v.errorf("disk.format", "unknown format %q (want qcow2 or raw)", d.Format)
	}
	switch d.Compression {
	case "zstd", "zlib", "none":
		if d.Format == "raw" && d.Compression != "none" {
			v.errorf("disk.compression", "raw images cannot be compressed; use format: qcow2 or compression: none")
		}
	default:
		v.errorf("disk.compression", "unknown compression %q (want zstd, zlib or none)", d.Compression)
	}
	if len(d.Firmware) == 0 {
		v.errorf("disk.firmware", "list at least one firmware: bios, uefi")
	}
	seen := map[string]bool{}
	for i, f := range d.Firmware {
		if f != "bios" && f != "uefi" {
			v.errorf(fmt.Sprintf("disk.firmware[%d]", i), "unknown firmware %q (want bios or uefi)", f)
		}
		if seen[f] {
			v.errorf(fmt.Sprintf("disk.firmware[%d]", i), "%s is listed twice", f)
		}
		seen[f] = true
	}
}

func (v *validator) network(p string, n *Network) {
	if len(n.Ethernets) == 0 {
		v.errorf(p+".ethernets", "configure at least one interface, or leave network out for DHCP everywhere")
	}
	for name, e := range n.Ethernets {
		ep := p + ".ethernets." + name
		for i, a := range e.Addresses {
			if _, err := netip.ParsePrefix(a); err != nil {
				v.errorf(fmt.Sprintf("%s.addresses[%d]", ep, i), "invalid address %q (want CIDR form like 10.0.0.5/24)", a)
			}
		}
		if e.Gateway4 != "" {
			if a, err := netip.ParseAddr(e.Gateway4); err != nil || !a.Is4() {
				v.errorf(ep+".gateway4", "invalid IPv4 gateway %q", e.Gateway4)
			}
		}
		if e.Nameservers != nil {
			for i, a := range e.Nameservers.Addresses {
				if _, err := netip.ParseAddr(a); err != nil {
					v.errorf(fmt.Sprintf("%s.nameservers.addresses[%d]", ep, i), "invalid address %q", a)
				}
			}
		}
		if e.MTU != 0 && (e.MTU < 576 || e.MTU > 9216) {
			v.errorf(ep+".mtu", "MTU %d is out of range (576-9216)", e.MTU)
		}
	}
}

func (v *validator) roles() {
	seen := map[string]string{}
	for i, role := range v.r.Roles {
		if role.Params == nil {
			continue // already reported by the decoder
		}
		p := fmt.Sprintf("roles[%d]", i)
		if prev, dup := seen[role.Name]; dup {
			v.errorf(p, "role %s is already listed at %s; merge the parameters into one entry", role.Name, prev)
		}
		seen[role.Name] = p
		role.Params.validate(v.sub(role.path))
	}
}

// Field-level checks shared by the recipe and the roles.

func (v *validator) packages(p string, pkgs []string) {
	for i, pkg := range pkgs {
		if !packageRE.MatchString(pkg) {
			v.errorf(fmt.Sprintf("%s[%d]", p, i), "invalid package name %q", pkg)
		}
	}
}

// environment checks plain variables, written to envFile, and secret ones
// (env:/file: references).
func (v *validator) environment(envPath string, env map[string]string, envFile, secretPath string, secrets map[string]Secret) {
	for k, val := range env {
		if !envNameRE.MatchString(k) {
			v.errorf(envPath+"."+k, "invalid environment variable name %q", k)
		}
		if _, _, ok := literalRef(val); ok {
			v.warnf(envPath+"."+k, "%q is written literally into %s; to pass the value it refers to, move it to %s: {%s: %s}", val, envFile, secretPath, k, val)
		}
	}
	for k, s := range secrets {
		if !envNameRE.MatchString(k) {
			v.errorf(secretPath+"."+k, "invalid environment variable name %q", k)
		}
		v.secretRef(secretPath+"."+k, s)
	}
}

func (v *validator) port(p string, port int) {
	if port < 1 || port > 65535 {
		v.errorf(p, "port %d is not in 1-65535", port)
	}
}

func (v *validator) guestPath(p, gp string) {
	switch {
	case gp == "":
		v.errorf(p, "missing required field path")
	case !path.IsAbs(gp):
		v.errorf(p, "path %q must be absolute (start with /)", gp)
	case path.Clean(gp) != gp:
		v.errorf(p, "path %q is not clean; write %q", gp, path.Clean(gp))
	}
}

func (v *validator) owner(p, owner string) {
	if owner == "" {
		return
	}
	u, g, _ := strings.Cut(owner, ":")
	if !userRE.MatchString(u) || (g != "" && !userRE.MatchString(g)) {
		v.errorf(p, "invalid owner %q (want user or user:group)", owner)
	}
}

// localPath checks a reference to a file beside the recipe. It may not leave
// the recipe's directory: a recipe must not reach into the build host.
func (v *validator) localPath(p, ref string, allowAbs bool) {
	if ref == "" {
		v.errorf(p, "empty path")
		return
	}
	if filepath.IsAbs(ref) {
		if !allowAbs {
			v.errorf(p, "%q is absolute; give a path relative to the recipe's directory", ref)
		}
		return
	}
	if c := filepath.Clean(ref); c == ".." || strings.HasPrefix(c, "../") {
		v.errorf(p, "%q leaves the recipe's directory; keep referenced files beside the recipe", ref)
	}
}

// literalRef returns the kind and target of a literal value written exactly
// like a secret reference (env:NAME or file:PATH). kiln writes literal
// values as they are, which is rarely what such a value meant.
func literalRef(s string) (kind, target string, ok bool) {
	kind, target, ok = Secret(s).Ref()
	if !ok || strings.ContainsAny(target, " \t\r\n") || (kind == "env" && !envNameRE.MatchString(target)) {
		return "", "", false
	}
	return kind, target, true
}

// literalContent warns about file content that looks like a reference, and
// names the field that would resolve it.
func (v *validator) literalContent(p, content string, boot bool) {
	kind, target, ok := literalRef(content)
	if !ok {
		return
	}
	var fix string
	switch {
	case kind == "env" && boot:
		fix = fmt.Sprintf("to use the environment variable, write secret: %s instead", content)
	case kind == "env":
		fix = fmt.Sprintf("to use the environment variable, write secret: %s (boot.files only)", content)
	case filepath.IsAbs(target) && boot:
		fix = fmt.Sprintf("to read the file when the seed is written, write secret: %s instead", content)
	case filepath.IsAbs(target):
		fix = fmt.Sprintf("to read the file when seeds are written, move this entry to boot.files as secret: %s", content)
	case boot:
		fix = fmt.Sprintf("to copy the file, write source: %s, or secret: %s for a secret", target, content)
	default:
		fix = fmt.Sprintf("to copy the file, write source: %s (a secret goes under boot.files as secret: %s)", target, content)
	}
	v.warnf(p, "%q is written literally; %s", content, fix)
}

// secretRef checks an env:NAME or file:PATH reference. Files may be absolute
// (/run/secrets/db) but relative ones may not leave the recipe's directory.
func (v *validator) secretRef(p string, s Secret) {
	kind, target, ok := s.Ref()
	if !ok {
		v.errorf(p, "secret must be a reference, env:NAME or file:PATH; secrets are never written in a recipe")
		return
	}
	if kind == "env" && !envNameRE.MatchString(target) {
		v.errorf(p, "invalid environment variable name %q", target)
	}
	if kind == "file" {
		v.localPath(p, target, true)
	}
}
