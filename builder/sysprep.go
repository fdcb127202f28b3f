package builder

import (
	"os"
	"path/filepath"
	"time"
)

// sysprepRemove is the hygiene list: what must not survive into a golden
// image, so every clone is unique and nothing of the build leaks. kiln lint
// checks the same list on any image.
var sysprepRemove = []string{
	"/var/lib/dbus/machine-id",
	"/etc/ssh/ssh_host_*",
	"/var/lib/cloud/*",
	"/var/log/cloud-init*.log",
	"/var/lib/dhcp/*",
	"/var/lib/dhclient/*",
	"/var/lib/NetworkManager/*.lease",
	"/var/lib/systemd/network/*",
	"/root/.bash_history", "/root/.python_history", "/root/.lesshst", "/root/.viminfo", "/root/.wget-hsts",
	"/home/*/.bash_history", "/home/*/.python_history", "/home/*/.lesshst", "/home/*/.viminfo",
	"/var/cache/apt/*.bin", "/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/partial/*",
	"/var/lib/apt/lists/*_*", "/var/lib/apt/lists/partial/*", "/var/cache/debconf/*-old",
	"/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed",
	"/var/cache/ldconfig/aux-cache", // inode numbers and times of the bake tree: only speeds up the next ldconfig
	"/var/log/journal/*", "/var/log/apt/*", "/var/log/dpkg.log", "/var/log/alternatives.log", "/var/log/bootstrap.log",
	"/var/lib/systemd/timers/*", "/var/lib/systemd/timesync/*",
	"/var/lib/kiln/cron/*", "/var/lib/kiln/job/*",
	"/tmp/*", "/var/tmp/*",
	"/usr/sbin/policy-rc.d",
	lockPreferences,
	// ssl-cert's snake-oil key pair, made when the package was installed:
	// one private key every clone would share (snakeoilUnit makes each
	// instance its own).
	"/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/ssl/certs/ssl-cert-snakeoil.pem",
}

// snakeoilUnit makes an instance's snake-oil certificate at its first boot,
// before any service (PostgreSQL's default TLS) reads it, where the image
// has ssl-cert's tool. It is the same file the VM bake's guest writes.
const snakeoilUnit = "kiln-snakeoil.service"

// removeSnakeoilLinks removes the hash links make-ssl-cert made to the
// removed snake-oil certificate: they would dangle, and their names hash
// the certificate's subject, the build host's name.
func removeSnakeoilLinks(r root) error {
	dir, err := r.resolve("/etc/ssl/certs")
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "ssl-cert-snakeoil.pem" {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// sysprep makes the tree a clean golden image: the hygiene list removed, a
// machine-id that makes each clone generate its own (machineID), and the
// image's own resolv.conf.
func sysprep(r root, machineID string) error {
	if err := r.remove(sysprepRemove...); err != nil {
		return err
	}
	if err := removeSnakeoilLinks(r); err != nil {
		return err
	}
	if err := touchCleaned(r); err != nil {
		return err
	}
	if r.exists("/usr/sbin/make-ssl-cert") {
		if err := r.writeFile("/etc/systemd/system/"+snakeoilUnit, []byte(asset(snakeoilUnit)), 0o644, 0, 0); err != nil {
			return err
		}
		if err := r.symlink("../"+snakeoilUnit, "/etc/systemd/system/sysinit.target.wants/"+snakeoilUnit); err != nil {
			return err
		}
	} else if err := r.remove("/etc/systemd/system/"+snakeoilUnit+".d", snakeoilScript); err != nil {
		// No ssl-cert, no snake-oil: boot tuning's way to make one goes.
		return err
	}
	if err := r.writeFile("/etc/machine-id", []byte(machineID), 0o444, 0, 0); err != nil {
		return err
	}
	// The image's own resolver: systemd-resolved's stub, not the build host's.
	if r.exists("/lib/systemd/system/systemd-resolved.service") {
		if err := r.symlink("../run/systemd/resolve/stub-resolv.conf", "/etc/resolv.conf"); err != nil {
			return err
		}
	} else if err := r.writeFile("/etc/resolv.conf", nil, 0o644, 0, 0); err != nil {
		return err
	}
	// Empty, not missing: tools expect these log files to exist.
	for _, f := range []string{"/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog"} {
		if host, err := r.resolve(f); err == nil {
			if _, err := os.Stat(host); err == nil {
				os.Truncate(host, 0)
			}
		}
	}
	return os.MkdirAll(filepath.Join(r.dir, "var/lib/cloud"), 0o755)
}

// touchCleaned gives every directory the hygiene list cleans the time of
// now, which the bake then clamps to the image's epoch: whether apt
// downloaded into archives/partial, or a log was there to remove, leaves
// no trace in the image's bytes.
func touchCleaned(r root) error {
	now := time.Now()
	for _, pattern := range sysprepRemove {
		dirs, err := filepath.Glob(filepath.Join(r.dir, filepath.Dir(pattern)))
		if err != nil {
			return err
		}
		for _, d := range dirs {
			if st, err := os.Lstat(d); err != nil || !st.IsDir() {
				continue // absent, or a symlink: nothing of the tree's to stamp
			}
			if err := os.Chtimes(d, now, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func osMode(m uint32) os.FileMode { return os.FileMode(m) }
