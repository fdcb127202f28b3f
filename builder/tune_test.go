package builder

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/disk"
)

// The network stage's condition, run by sh against instance data as
// cloud-init 22.4 writes it (json_dumps: indent 1, sorted keys).
func TestNetworkStageCondition(t *testing.T) {
	const path = "/run/cloud-init/instance-data.json"
	script := asset("cloud-init-network-stage")
	if strings.Count(script, path) != 1 {
		t.Fatalf("the script should read %s once:\n%s", path, script)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "instance-data.json")
	script = strings.Replace(script, path, data, 1)
	runs := func() bool {
		t.Helper()
		err := exec.Command("sh", "-c", script).Run()
		if err == nil {
			return true
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return false
		}
		t.Fatalf("condition: %v (ExecCondition treats exit codes above 254 as failure)", err)
		return false
	}
	if !runs() {
		t.Error("no instance data (no datasource found yet): the network stage must run")
	}
	instanceData := func(dsmode string) string {
		return "{\n \"ds\": {\n  \"_doc\": \"EXPERIMENTAL\",\n  \"meta_data\": {\n   \"dsmode\": \"" + dsmode +
			"\",\n   \"instance-id\": \"i-1\",\n   \"local-hostname\": \"web-1\"\n  }\n },\n \"v1\": {\n  \"cloud_name\": \"nocloud\"\n }\n}\n"
	}
	for dsmode, want := range map[string]bool{"local": false, "net": true, "disabled": true} {
		if err := os.WriteFile(data, []byte(instanceData(dsmode)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := runs(); got != want {
			t.Errorf("dsmode %s: network stage runs = %v, want %v", dsmode, got, want)
		}
	}
	if err := os.WriteFile(data, []byte("{\n \"v1\": {\n  \"local-hostname\": \"local\"\n }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !runs() {
		t.Error("instance data without a dsmode: the network stage must run")
	}
}

// Tuned trees carry the network stage's condition and grow their root with
// kiln-grow-root.service instead of cloud-init's growpart; the untuned
// baseline keeps cloud-init's stock units and modules.
func TestTuneImageStages(t *testing.T) {
	for _, tuned := range []bool{true, false} {
		r := root{dir: t.TempDir()}
		if err := tuneImage(r, "0b1e7f0c-0000-4000-8000-000000000001", []string{"NoCloud", "None"}, tuned); err != nil {
			t.Fatal(err)
		}
		conf, confErr := os.ReadFile(filepath.Join(r.dir, initramfsConf))
		hook, hookErr := os.Stat(filepath.Join(r.dir, initramfsHook))
		dropIn, err := os.ReadFile(filepath.Join(r.dir, "etc/systemd/system/cloud-init.service.d/50-kiln.conf"))
		if !tuned {
			if err == nil {
				t.Error("untuned image has the network-stage drop-in")
			}
			if confErr == nil || hookErr == nil {
				t.Error("untuned image has the initramfs tuning")
			}
			continue
		}
		// The small initramfs: MODULES=list, and the hook that adds the disk
		// drivers (a shell script initramfs-tools runs).
		if !strings.Contains(string(conf), "\nMODULES=list\n") || hookErr != nil || hook.Mode().Perm() != 0o755 {
			t.Errorf("initramfs tuning: %q %v; hook %v", conf, confErr, hookErr)
		}
		if b, _ := os.ReadFile(filepath.Join(r.dir, initramfsHook)); strings.Contains(string(b), "@DRIVERS@") || !strings.Contains(string(b), "for module in virtio_pci virtio_blk virtio_scsi ") {
			t.Errorf("the initramfs hook does not list the disk drivers:\n%s", b)
		}
		if out, err := exec.Command("sh", "-n", filepath.Join(r.dir, initramfsHook)).CombinedOutput(); err != nil {
			t.Errorf("the initramfs hook is not valid sh: %v %s", err, out)
		}
		if out, err := exec.Command("sh", filepath.Join(r.dir, initramfsHook), "prereqs").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("the initramfs hook's prereqs: %q %v", out, err)
		}
		if target, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system/cloud-config.service")); err != nil || target != "/dev/null" {
			t.Errorf("classic cloud-init: the config stage is not masked: %q %v", target, err)
		}
		if err != nil || !strings.Contains(string(dropIn), "ExecCondition="+networkStageScript) {
			t.Fatalf("drop-in: %q, %v", dropIn, err)
		}
		st, err := os.Stat(filepath.Join(r.dir, networkStageScript))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("condition script: %v %v", st, err)
		}
		if _, err := os.Lstat(filepath.Join(r.dir, "etc/systemd/system/cloud-init-local.service")); err == nil {
			t.Error("the local stage is masked: it applies kiln's seeds")
		}
		if target, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system/sysinit.target.wants/kiln-grow-root.service")); err != nil || target != "/etc/systemd/system/kiln-grow-root.service" {
			t.Errorf("kiln-grow-root.service is not enabled: %q %v", target, err)
		}
		cfg, _ := os.ReadFile(filepath.Join(r.dir, "etc/cloud/cloud.cfg.d/99-kiln.cfg"))
		if strings.Contains(string(cfg), "- growpart") || strings.Contains(string(cfg), "- resizefs") {
			t.Errorf("cloud-init still grows the root:\n%s", cfg)
		}
	}
}

// With one cloud-init process for every stage (cloud-init 24.3 and later,
// Debian 13), each stage unit hands over to that process: tuning must mask
// or skip none of them, or the final stage never finishes.
func TestTuneImageSingleProcessStages(t *testing.T) {
	for name, setup := range map[string]func(dir string) error{
		"unit": func(dir string) error {
			return writeTreeFile(dir, "usr/lib/systemd/system/cloud-init-main.service", "[Service]\nExecStart=/usr/bin/cloud-init --all-stages\n")
		},
		"dpkg": func(dir string) error {
			return writeTreeFile(dir, "var/lib/dpkg/status", "Package: cloud-init\nStatus: install ok installed\nArchitecture: all\nVersion: 25.1.4-1+deb13u1\n\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := root{dir: t.TempDir()}
			if err := setup(r.dir); err != nil {
				t.Fatal(err)
			}
			if got := detectStageLayout(os.DirFS(r.dir)); got != stagesSingleProcess {
				t.Fatalf("layout %v", got)
			}
			if err := tuneImage(r, "0b1e7f0c-0000-4000-8000-000000000001", []string{"NoCloud", "None"}, true); err != nil {
				t.Fatal(err)
			}
			for _, unit := range []string{"cloud-init-main.service", "cloud-init-local.service", "cloud-init-network.service", "cloud-init.service", "cloud-config.service", "cloud-final.service"} {
				if _, err := os.Lstat(filepath.Join(r.dir, "etc/systemd/system", unit)); err == nil {
					t.Errorf("%s is masked or overridden", unit)
				}
				if _, err := os.Stat(filepath.Join(r.dir, "etc/systemd/system", unit+".d")); err == nil {
					t.Errorf("%s has a drop-in", unit)
				}
			}
			for _, g := range []string{"systemd-ssh-generator", "systemd-tpm2-generator"} {
				if target, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system-generators", g)); err != nil || target != "/dev/null" {
					t.Errorf("%s not masked: %q %v", g, target, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(r.dir, "etc/modprobe.d/kiln-tuning.conf")); err != nil || !strings.Contains(string(b), "blacklist kvm_intel\n") || !strings.Contains(string(b), "blacklist acpi_cpufreq\n") {
				t.Errorf("KVM not kept from loading at boot: %q %v", b, err)
			}
			// The rest of the tuning still applies.
			for _, unit := range []string{"systemd-binfmt.service", "systemd-udev-load-credentials.service"} {
				if target, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system", unit)); err != nil || target != "/dev/null" {
					t.Errorf("%s not masked: %q %v", unit, target, err)
				}
			}
			cfg, _ := os.ReadFile(filepath.Join(r.dir, "etc/cloud/cloud.cfg.d/99-kiln.cfg"))
			if !strings.Contains(string(cfg), "ssh_genkeytypes: [ed25519, ecdsa]") {
				t.Errorf("cloud.cfg tuning missing:\n%s", cfg)
			}
		})
	}
}

func TestStageLayoutOf(t *testing.T) {
	for v, want := range map[string]stageLayout{
		"22.4.2-1+deb12u1": stagesClassic,
		"24.2-0ubuntu1":    stagesClassic,
		"24.3":             stagesSingleProcess,
		"24.4~3+deb13":     stagesSingleProcess,
		"25.1.4-1+deb13u1": stagesSingleProcess,
		"1:26.1-1":         stagesSingleProcess,
		"":                 stagesClassic,
		"garbage":          stagesClassic,
	} {
		if got := stageLayoutOf(v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// The stamps say /etc and /var are up to date with /usr by systemd's own
// comparison: equal seconds, and TIMESTAMP_NSEC no older than /usr.
func TestWriteUpdateStamps(t *testing.T) {
	r := root{dir: t.TempDir()}
	usr := filepath.Join(r.dir, "usr")
	if err := os.Mkdir(usr, 0o755); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(usr, when, when); err != nil {
		t.Fatal(err)
	}
	if err := writeUpdateStamps(r); err != nil {
		t.Fatal(err)
	}
	u, _ := os.Stat(usr)
	for _, stamp := range needsUpdateStamps {
		st, err := os.Stat(filepath.Join(r.dir, stamp))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(u.ModTime()) || u.ModTime().Nanosecond() != 0 {
			t.Errorf("%s: mtime %v, /usr %v", stamp, st.ModTime(), u.ModTime())
		}
		b, _ := os.ReadFile(filepath.Join(r.dir, stamp))
		if want := fmt.Sprintf("TIMESTAMP_NSEC=%d\n", u.ModTime().UnixNano()); !strings.HasSuffix(string(b), want) {
			t.Errorf("%s:\n%s\nwant it to end with %q", stamp, b, want)
		}
	}
}

func writeTreeFile(dir, rel, content string) error {
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// A checked-hash .pyc (what Python writes while SOURCE_DATE_EPOCH is set)
// becomes a timestamp one for its source; the code after the header is
// kept, and files that are not hash-based bytecode are left alone.
func TestTimestampPycs(t *testing.T) {
	r := root{dir: t.TempDir()}
	mtime := time.Date(2025, 6, 24, 20, 50, 0, 0, time.UTC)
	if err := writeTreeFile(r.dir, "usr/lib/python3/dist-packages/pkg/mod.py", "x = 1\n"); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(r.dir, "usr/lib/python3/dist-packages/pkg/mod.py"), mtime, mtime)
	code := "\xe3marshalled code"
	checked := "\xf3\x0d\r\n" + "\x03\x00\x00\x00" + "12345678" + code
	timestamp := "\xf3\x0d\r\n" + "\x00\x00\x00\x00" + "abcdefgh" + code
	files := map[string]string{
		"usr/lib/python3/dist-packages/pkg/__pycache__/mod.cpython-313.pyc":       checked,
		"usr/lib/python3/dist-packages/pkg/__pycache__/mod.cpython-313.opt-1.pyc": checked,
		"usr/lib/python3/dist-packages/pkg/__pycache__/gone.cpython-313.pyc":      checked,   // no source
		"usr/lib/python3/dist-packages/pkg/__pycache__/old.cpython-313.pyc":       timestamp, // no source, not hash-based
		"usr/lib/python3/dist-packages/pkg/__pycache__/short.cpython-313.pyc":     "\xf3\x0d",
	}
	for p, c := range files {
		if err := writeTreeFile(r.dir, p, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := timestampPycs(r); err != nil {
		t.Fatal(err)
	}
	var want [16]byte
	copy(want[:4], "\xf3\x0d\r\n")
	binary.LittleEndian.PutUint32(want[8:12], uint32(mtime.Unix()))
	binary.LittleEndian.PutUint32(want[12:16], uint32(len("x = 1\n")))
	for p, before := range files {
		got, _ := os.ReadFile(filepath.Join(r.dir, p))
		switch {
		case strings.Contains(p, "/mod."):
			if string(got[:16]) != string(want[:]) || string(got[16:]) != code {
				t.Errorf("%s: % x, want header % x and the code kept", p, got, want)
			}
		case string(got) != before:
			t.Errorf("%s changed: % x", p, got)
		}
	}
}

// The tuned snake-oil script, run by sh in a scratch tree: an ECDSA P-256
// key pair that names the host, make-ssl-cert's modes and hash link, and a
// second run (a certificate made again) leaves no stale link behind.
func TestSnakeoilScript(t *testing.T) {
	script := asset("snakeoil")
	if !strings.Contains(script, "chown root:ssl-cert ") || strings.Count(script, "/etc/ssl/") != 2 {
		t.Fatalf("the script should name /etc/ssl/private and /etc/ssl/certs once each and give the key to root:ssl-cert:\n%s", script)
	}
	dir := t.TempDir()
	for _, d := range []string{"etc/ssl/private", "etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The scratch tree's owner stands in for root:ssl-cert.
	script = strings.ReplaceAll(script, "/etc/ssl/", dir+"/etc/ssl/")
	script = strings.Replace(script, "root:ssl-cert", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), 1)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	keyPath, certPath := filepath.Join(dir, "etc/ssl/private/ssl-cert-snakeoil.key"), filepath.Join(dir, "etc/ssl/certs/ssl-cert-snakeoil.pem")
	check := func() {
		t.Helper()
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("snakeoil: %v\n%s", err, out)
		}
		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			t.Fatalf("not a key pair a TLS server loads: %v", err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
		}
		if cert.Subject.CommonName != host || len(cert.DNSNames) != 1 || cert.DNSNames[0] != host || cert.IsCA {
			t.Errorf("certificate CN %q, SAN %q, CA %v: want the host name %q in both, not a CA", cert.Subject.CommonName, cert.DNSNames, cert.IsCA, host)
		}
		if cert.NotAfter.Sub(cert.NotBefore) < 3649*24*time.Hour {
			t.Errorf("valid %s, want make-ssl-cert's 3650 days", cert.NotAfter.Sub(cert.NotBefore))
		}
		for path, want := range map[string]os.FileMode{keyPath: 0o640, certPath: 0o644} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v, want mode %o", path, err, want)
			}
		}
		entries, err := os.ReadDir(filepath.Dir(certPath))
		if err != nil {
			t.Fatal(err)
		}
		var links []string
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(filepath.Dir(certPath), e.Name())); err == nil && target == "ssl-cert-snakeoil.pem" {
				links = append(links, e.Name())
			} else if e.Name() != "ssl-cert-snakeoil.pem" {
				t.Errorf("left behind in certs: %s", e.Name())
			}
		}
		hash, err := exec.Command("openssl", "x509", "-hash", "-noout", "-in", certPath).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(string(hash)) + ".0"; len(links) != 1 || links[0] != want {
			t.Errorf("hash links %q, want only %s", links, want)
		}
		if entries, _ := os.ReadDir(filepath.Dir(keyPath)); len(entries) != 1 {
			t.Errorf("private holds %d entries, want only the key", len(entries))
		}
	}
	check()
	first, _ := os.ReadFile(keyPath)
	// A link an older certificate left under another hash goes too.
	if err := os.Symlink("ssl-cert-snakeoil.pem", filepath.Join(dir, "etc/ssl/certs/00000000.0")); err != nil {
		t.Fatal(err)
	}
	check()
	if again, _ := os.ReadFile(keyPath); string(again) == string(first) {
		t.Error("a second run kept the old key")
	}
}

// Tuned trees make their snake-oil key with the script, after the host is
// named; untuned ones keep make-ssl-cert's RSA.
func TestSnakeoilTuning(t *testing.T) {
	for _, tuned := range []bool{true, false} {
		files, _, _ := imageTuning("u", []string{"NoCloud"}, tuned, stagesSingleProcess)
		var dropIn string
		for _, f := range files {
			if strings.HasPrefix(f.path, "/etc/systemd/system/"+snakeoilUnit+".d/") {
				dropIn = f.content
			}
		}
		if got := strings.Contains(dropIn, "ExecStart=\nExecStart="+snakeoilScript+"\n") && strings.Contains(dropIn, "After=cloud-init-network.service"); got != tuned {
			t.Errorf("tuned %v: drop-in replaces make-ssl-cert = %v:\n%s", tuned, got, dropIn)
		}
	}
}

// Debian's ssh.service and dnsmasq.service (12 and 13) check their daemon's
// configuration in a separate start first; tuned images leave that out,
// after the recipe's bake, only where it is the unit's only ExecStartPre in
// its file and drop-ins, since the drop-in resets them all.
func TestStartChecks(t *testing.T) {
	const ssh = "[Service]\nEnvironmentFile=-/etc/default/ssh\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nExecReload=/usr/sbin/sshd -t\nExecReload=/bin/kill -HUP $MAINPID\n"
	const dnsmasq = "[Service]\nType=forking\nExecStartPre=/usr/share/dnsmasq/systemd-helper checkconfig\nExecStart=/usr/share/dnsmasq/systemd-helper exec\nExecStartPost=/usr/share/dnsmasq/systemd-helper start-resolvconf\n"
	sshDropIn, dnsmasqDropIn := "/etc/systemd/system/ssh.service.d/50-kiln-tuning.conf", "/etc/systemd/system/dnsmasq.service.d/50-kiln-tuning.conf"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  map[string]bool
	}{
		{"Debian's units", map[string]string{"usr/lib/systemd/system/ssh.service": ssh, "usr/lib/systemd/system/dnsmasq.service": dnsmasq},
			map[string]bool{sshDropIn: true, dnsmasqDropIn: true}},
		{"the check in a drop-in, seen once through merged /usr", map[string]string{"usr/lib/systemd/system/ssh.service": strings.Replace(ssh, "ExecStartPre=/usr/sbin/sshd -t\n", "", 1), "usr/lib/systemd/system/ssh.service.d/10-pkg.conf": "[Service]\nExecStartPre=/usr/sbin/sshd -t\n"},
			map[string]bool{sshDropIn: true, dnsmasqDropIn: false}},
		{"another ExecStartPre in the unit", map[string]string{"usr/lib/systemd/system/ssh.service": strings.Replace(ssh, "ExecStart=", "ExecStartPre=/bin/mkdir -p /run/sshd\nExecStart=", 1)},
			map[string]bool{sshDropIn: false}},
		{"another ExecStartPre in a recipe's drop-in", map[string]string{"usr/lib/systemd/system/dnsmasq.service": dnsmasq, "etc/systemd/system/dnsmasq.service.d/10-mine.conf": "[Service]\nExecStartPre=/usr/local/bin/prepare\n"},
			map[string]bool{dnsmasqDropIn: false}},
		{"no check", map[string]string{"usr/lib/systemd/system/ssh.service": strings.Replace(ssh, "ExecStartPre=/usr/sbin/sshd -t\n", "", 1)},
			map[string]bool{sshDropIn: false}},
		{"a unit in /etc overrides", map[string]string{"usr/lib/systemd/system/ssh.service": ssh, "etc/systemd/system/ssh.service": "[Service]\nExecStart=/usr/sbin/sshd -D\n"},
			map[string]bool{sshDropIn: false}},
		{"no units", nil, map[string]bool{sshDropIn: false, dnsmasqDropIn: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := root{dir: t.TempDir()}
			if err := os.Symlink("usr/lib", filepath.Join(r.dir, "lib")); err != nil {
				t.Fatal(err)
			}
			for p, content := range tc.files {
				if err := writeTreeFile(r.dir, p, content); err != nil {
					t.Fatal(err)
				}
			}
			if err := dropStartChecks(r); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				b, err := os.ReadFile(filepath.Join(r.dir, p))
				if got := err == nil; got != want {
					t.Errorf("%s written = %v, want %v", p, got, want)
				} else if got && !strings.Contains(string(b), "[Service]\nExecStartPre=\n") {
					t.Errorf("%s does not reset ExecStartPre:\n%s", p, b)
				}
			}
		})
	}
}

// The tuned command line keeps kiln's own (console, interface names) and
// adds the tuning; an untuned image boots with kiln's own only.
func TestKernelCmdline(t *testing.T) {
	if got := kernelCmdline(false); got != disk.DefaultCmdline {
		t.Errorf("untuned: %q", got)
	}
	tuned := strings.Fields(kernelCmdline(true))
	if !slices.Contains(tuned, "cryptomgr.notests") || !slices.Contains(tuned, "console=ttyS0,115200n8") || !slices.Contains(tuned, "net.ifnames=0") {
		t.Errorf("tuned: %q", tuned)
	}
	if tuningKey(nil, true) == tuningKey(nil, false) {
		t.Error("the tuning key does not tell tuned from untuned")
	}
}

// The grow-root script, run by sh against a scratch sysfs and mount table,
// with growpart and resize2fs stubs that record how they were called: it
// grows the root's partition and file system only when the disk has room
// after it, and looks no further on a disk of the image's own size.
func TestGrowRootScript(t *testing.T) {
	const (
		rootLine = "25 1 254:3 / / rw,relatime shared:1 - ext4 /dev/vda3 rw,errors=remount-ro\n"
		start    = 2099200
		size     = 4192223
	)
	cases := []struct {
		name      string
		mountinfo string
		diskSize  int
		disabled  bool
		want      string // the stubs' calls, in order
	}{
		{"no room", rootLine, start + size + 33, false, ""},
		{"less than 1 MiB", rootLine, start + size + 2048, false, ""},
		{"room", "24 1 0:22 / /run rw - tmpfs tmpfs rw\n" + rootLine, 2 * (start + size), false, "growpart /dev/vda 3\nresize2fs /dev/vda3\n"},
		{"switched off", rootLine, 2 * (start + size), true, ""},
		{"not a partition", strings.Replace(rootLine, "/dev/vda3", "/dev/vda", 1), 2 * (start + size), false, ""},
		{"overlay root", "25 1 0:30 / / rw - overlay overlay rw,lowerdir=/a\n", 2 * (start + size), false, ""},
		{"mounted over", rootLine + "40 25 0:30 / / rw - overlay overlay rw\n", 2 * (start + size), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(path, content string) {
				t.Helper()
				p := filepath.Join(dir, path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// sysfs: the class links point into the device tree, where a
			// partition is a directory in its disk's.
			blockDev := "sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda"
			write(blockDev+"/size", fmt.Sprintf("%d\n", c.diskSize))
			write(blockDev+"/vda3/partition", "3\n")
			write(blockDev+"/vda3/start", fmt.Sprintf("%d\n", start))
			write(blockDev+"/vda3/size", fmt.Sprintf("%d\n", size))
			for _, dev := range []string{"vda", "vda/vda3"} {
				link := filepath.Join(dir, "sys/class/block", filepath.Base(dev))
				if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("../../../"+filepath.Dir(blockDev)+"/"+dev, link); err != nil {
					t.Fatal(err)
				}
			}
			write("proc/self/mountinfo", c.mountinfo)
			if c.disabled {
				write("etc/growroot-disabled", "")
			}
			calls := filepath.Join(dir, "calls")
			for _, stub := range []string{"growpart", "resize2fs", "xfs_growfs"} {
				write("bin/"+stub, "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>"+calls+"\n")
			}
			script := asset("grow-root")
			for _, p := range []string{"/sys/class/block/", "/proc/self/mountinfo", "/etc/growroot-disabled"} {
				if !strings.Contains(script, p) {
					t.Fatalf("the script no longer reads %s", p)
				}
				script = strings.ReplaceAll(script, p, dir+p)
			}
			cmd := exec.Command("sh", "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("grow-root: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(calls)
			if string(got) != c.want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}
