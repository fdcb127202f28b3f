package builder

import (
	"os"
	"path/filepath"
	"testing"
)

// ssl-cert's snake-oil pair leaves the image with its hash link (named by
// the build host), other certificates' links stay, and the first-boot unit
// that makes each instance its own pair is enabled.
func TestSysprepSnakeoil(t *testing.T) {
	r := root{dir: t.TempDir()}
	for _, f := range []string{"/usr/sbin/make-ssl-cert", "/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/certs/ca.pem"} {
		if err := r.writeFile(f, []byte("x"), 0o644, os.Getuid(), os.Getgid()); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"/etc/ssl/certs/62742064.0": "ssl-cert-snakeoil.pem", "/etc/ssl/certs/0a775a30.0": "ca.pem"} {
		if err := r.symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := sysprep(r, ""); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"/etc/ssl/private/ssl-cert-snakeoil.key": false, "/etc/ssl/certs/ssl-cert-snakeoil.pem": false, "/etc/ssl/certs/62742064.0": false,
		"/etc/ssl/certs/ca.pem": true, "/etc/ssl/certs/0a775a30.0": true,
		"/etc/systemd/system/" + snakeoilUnit: true, "/etc/systemd/system/sysinit.target.wants/" + snakeoilUnit: true,
	} {
		if _, err := os.Lstat(filepath.Join(r.dir, p)); (err == nil) != want {
			t.Errorf("%s: present = %v, want %v", p, err == nil, want)
		}
	}
}

// Without ssl-cert there is no snake-oil unit, and tuning's drop-in and
// script for it go too.
func TestSysprepNoSnakeoil(t *testing.T) {
	r := root{dir: t.TempDir()}
	for _, f := range tuningFiles() {
		if err := r.writeFile(f.path, []byte(f.content), osMode(f.mode), os.Getuid(), os.Getgid()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sysprep(r, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/systemd/system/" + snakeoilUnit, "/etc/systemd/system/" + snakeoilUnit + ".d", snakeoilScript} {
		if _, err := os.Lstat(filepath.Join(r.dir, p)); err == nil {
			t.Errorf("%s is in an image without ssl-cert", p)
		}
	}
	if _, err := os.Stat(filepath.Join(r.dir, "/etc/modprobe.d/kiln-tuning.conf")); err != nil {
		t.Errorf("the rest of the tuning went too: %v", err)
	}
}
