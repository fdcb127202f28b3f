package lint

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
)

// FS is a root filesystem to lint: paths are relative to / ("etc/hosts").
type FS interface {
	fs.FS
	fs.ReadLinkFS
}

// Violation is one hygiene problem.
type Violation struct {
	Rule    string `json:"rule"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (v Violation) String() string {
	if v.Path == "" {
		return v.Rule + ": " + v.Message
	}
	return fmt.Sprintf("%s: /%s: %s", v.Rule, v.Path, v.Message)
}

// Rule is one hygiene check.
type Rule struct {
	Name        string
	Description string
	check       func(fsys FS) []Violation
}

// Rules are every check lint runs on a root filesystem, in report order.
// The free-space rule needs the disk itself and runs in Image.
var Rules = []Rule{
	{"machine-id", "/etc/machine-id is 'uninitialized' or empty, so each clone gets its own id", checkMachineID},
	{"dbus-machine-id", "no /var/lib/dbus/machine-id (or only a link to /etc/machine-id)", checkDBusMachineID},
	{"ssh-host-keys", "no SSH host keys: each instance generates its own", present("SSH host key", "etc/ssh/ssh_host_*")},
	{"tls-snakeoil", "no snake-oil TLS key (ssl-cert's): each instance makes its own", present("snake-oil TLS private key", "etc/ssl/private/ssl-cert-snakeoil.key")},
	{"cloud-init-state", "no cloud-init instance state: the image's first boot is a first boot", present("cloud-init state", "var/lib/cloud/instance", "var/lib/cloud/instances/*", "var/lib/cloud/data/*", "var/lib/cloud/sem/*")},
	{"cloud-init-logs", "no cloud-init logs", nonEmpty("cloud-init log", "var/log/cloud-init.log", "var/log/cloud-init-output.log")},
	{"dhcp-leases", "no DHCP leases", nonEmpty("DHCP lease", "var/lib/dhcp/*", "var/lib/dhclient/*", "var/lib/NetworkManager/*.lease", "var/lib/systemd/network/*")},
	{"shell-history", "no shell or tool histories", nonEmpty("history", "root/.*_history", "root/.lesshst", "root/.viminfo", "home/*/.*_history", "home/*/.lesshst", "home/*/.viminfo")},
	{"package-cache", "no package caches or package lists", nonEmpty("package cache", "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*", "var/cache/dnf/*", "var/cache/yum/*")},
	{"random-seed", "no saved random seed: clones would start with the same entropy", present("random seed", "var/lib/systemd/random-seed", "var/lib/urandom/random-seed")},
	{"resolv-conf", "the image's own resolv.conf, not the build host's", checkResolvConf},
	{"datasource-list", "cloud-init's datasource_list is pinned, NoCloud first", checkDatasourceList},
	{"build-logs", "no journal or package manager logs from the build", nonEmpty("build log", "var/log/journal/*", "var/log/apt/*.log", "var/log/dpkg.log", "var/log/bootstrap.log")},
	{"temp-files", "empty /tmp and /var/tmp", present("temporary file", "tmp/*", "var/tmp/*")},
	{"policy-rc", "no policy-rc.d left from the build: it would keep services from starting", present("policy-rc.d", "usr/sbin/policy-rc.d")},
	{"first-boot-work", "first boot has nothing to rebuild: update stamps not older than /usr, ld.so.cache, journal catalog, hwdb.bin", checkFirstBootWork},
}

// RuleNames lists every rule, the free-space rule included.
func RuleNames() []string {
	names := make([]string, 0, len(Rules)+1)
	for _, r := range Rules {
		names = append(names, r.Name)
	}
	return append(names, FreeSpaceRule)
}

// CheckFS runs every rule on a root filesystem.
func CheckFS(fsys FS) []Violation {
	var out []Violation
	for _, r := range Rules {
		for _, v := range r.check(fsys) {
			v.Rule = r.Name
			out = append(out, v)
		}
	}
	return out
}

// present reports every path matching the patterns.
func present(what string, patterns ...string) func(FS) []Violation {
	return func(fsys FS) []Violation {
		var out []Violation
		for _, p := range matches(fsys, patterns) {
			out = append(out, Violation{Path: p, Message: what + " present"})
		}
		return out
	}
}

// nonEmpty reports matching files with content and non-empty directories.
func nonEmpty(what string, patterns ...string) func(FS) []Violation {
	return func(fsys FS) []Violation {
		var out []Violation
		for _, p := range matches(fsys, patterns) {
			st, err := fsys.Lstat(p)
			if err != nil {
				continue
			}
			switch {
			case st.IsDir():
				if entries, _ := fs.ReadDir(fsys, p); len(entries) == 0 {
					continue
				}
			case st.Mode().IsRegular() && st.Size() == 0:
				continue
			}
			out = append(out, Violation{Path: p, Message: what + " present"})
		}
		return out
	}
}

// matches expands the patterns; like a shell glob, "*" skips dot files
// unless the pattern names the dot.
func matches(fsys FS, patterns []string) []string {
	var out []string
	for _, pat := range patterns {
		m, err := fs.Glob(fsys, pat)
		if err != nil {
			continue
		}
		out = append(out, m...)
	}
	return out
}

var hexID = lazyre.New(`^[0-9a-f]{32}$`)

func checkMachineID(fsys FS) []Violation {
	b, err := fs.ReadFile(fsys, "etc/machine-id")
	if err != nil {
		return nil // systemd creates it; a missing file is clean too
	}
	id := strings.TrimSpace(string(b))
	if id == "" || id == "uninitialized" {
		return nil
	}
	if hexID.MatchString(id) {
		return []Violation{{Path: "etc/machine-id", Message: fmt.Sprintf("holds the id %s: every clone would share it; write 'uninitialized'", id)}}
	}
	return []Violation{{Path: "etc/machine-id", Message: fmt.Sprintf("holds %q, want 'uninitialized' or nothing", truncate(id))}}
}

func checkDBusMachineID(fsys FS) []Violation {
	const p = "var/lib/dbus/machine-id"
	st, err := fsys.Lstat(p)
	if err != nil {
		return nil
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		if t, err := fsys.ReadLink(p); err == nil && (t == "/etc/machine-id" || path.Clean(path.Join("var/lib/dbus", t)) == "etc/machine-id") {
			return nil
		}
	}
	return []Violation{{Path: p, Message: "a saved D-Bus machine id: clones would share it"}}
}

func checkResolvConf(fsys FS) []Violation {
	const p = "etc/resolv.conf"
	st, err := fsys.Lstat(p)
	if err != nil || st.Mode()&fs.ModeSymlink != 0 {
		return nil // missing, or a link into /run managed at boot
	}
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && !strings.HasPrefix(f[1], "127.") && f[1] != "::1" {
			return []Violation{{Path: p, Message: fmt.Sprintf("a static resolver (nameserver %s), likely the build host's; link it to the image's own resolver", f[1])}}
		}
	}
	return nil
}

var datasourceRE = lazyre.New(`(?m)^\s*datasource_list\s*:\s*\[?\s*([^\]\n]*)`)

func checkDatasourceList(fsys FS) []Violation {
	if _, err := fs.Stat(fsys, "etc/cloud/cloud.cfg"); err != nil {
		return nil // no cloud-init
	}
	files, _ := fs.Glob(fsys, "etc/cloud/cloud.cfg.d/*.cfg")
	files = append([]string{"etc/cloud/cloud.cfg"}, files...) // later files win, as in cloud-init
	var list, from string
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			continue
		}
		if m := datasourceRE.RE().FindSubmatch(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))); m != nil {
			list, from = strings.TrimSpace(string(m[1])), f
		}
	}
	if from == "" {
		return []Violation{{Path: "etc/cloud/cloud.cfg.d", Message: "datasource_list is not pinned: cloud-init probes every datasource at boot; set it with NoCloud first"}}
	}
	first := strings.Trim(strings.TrimSpace(strings.Split(list, ",")[0]), `"'`)
	if first != "NoCloud" {
		return []Violation{{Path: from, Message: fmt.Sprintf("datasource_list starts with %q, want NoCloud first", first)}}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
