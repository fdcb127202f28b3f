package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
)

// baseLayout names the layout of package bases; bump it when basePackages
// or the mmdebstrap options change, so cached bases are rebuilt.
const baseLayout = "debian-base-v3"

// BasePackages returns the packages every Debian base gets.
func BasePackages() []string { return append([]string{}, basePackages...) }

// basePackages make a cloud image out of Debian's essential set: a kernel
// (the cloud flavour: virtio drivers, small), systemd with networkd and
// resolved (what cloud-init renders networking for in kiln images),
// cloud-init, OpenSSH, growpart, and the basics an operator expects.
var basePackages = []string{
	"linux-image-cloud-amd64", "systemd-sysv", "systemd-resolved", "systemd-timesyncd", "udev", "dbus",
	"cloud-init", "cloud-guest-utils", "openssh-server", "sudo", "e2fsprogs",
	"iproute2", "iputils-ping", "netbase", "ca-certificates", "procps", "less", "python3",
}

// dpkgExcludes keep documentation, manuals and translations out of images
// (copyright files stay). mmdebstrap writes them into the image's dpkg
// configuration, so packages baked later follow them too.
var dpkgExcludes = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/locale/*",
	"path-include=/usr/share/locale/locale.alias",
	"path-exclude=/usr/share/info/*",
}

// packageBase describes one Debian base to build with mmdebstrap.
type packageBase struct {
	Layout   string   `json:"layout"`
	Suite    string   `json:"suite"`
	Arch     string   `json:"arch"`
	Sources  []string `json:"sources"`
	Packages []string `json:"packages"`
	// Pins are name=version from a package lock: apt installs exactly
	// these (lockPreferences). A locked base is its own cache entry.
	Pins []string `json:"pins,omitempty"`
}

// newPackageBase describes the base of a release, by codename (an alias
// resolved: resolveSuite).
func newPackageBase(suite string, mirrors Mirrors) packageBase {
	return packageBase{Layout: baseLayout, Suite: suite, Arch: "amd64", Sources: mirrors.SourceLines(suite), Packages: basePackages}
}

// Key is the content key of the base's inputs.
func (pb packageBase) Key() string {
	b, _ := json.Marshal(pb)
	return shortDigest(b)
}

// ensureBase puts the base's tree at tree. A cached base is unpacked from
// its tarball; otherwise mmdebstrap builds the tree right there (no tar and
// untar on a cold bake) and a tarball of it is cached for the next bakes.
func (b *Builder) ensureBase(ctx context.Context, pb packageBase, tree string) error {
	key := pb.Key()
	tarball := filepath.Join(b.cache.entryPath(KindBase, key), "base.tar")
	if _, err := os.Stat(tarball); err != nil || b.opts.RefreshBase {
		built, err := b.buildBase(ctx, pb, tree)
		if err != nil || built {
			return err
		}
	}
	release, err := b.cache.use(ctx, KindBase, key)
	if err != nil {
		return err
	}
	defer release()
	step := progress.Begin(b.sink, "base", 0, fmt.Sprintf("unpacking the cached debian:%s base (%s)", pb.Suite, key))
	if err := os.Mkdir(tree, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", tree)
	if _, err := runCmd(ctx, "unpacking the base", cmd, nil); err != nil {
		return err
	}
	step.End("")
	return nil
}

// buildBase builds the base into tree with mmdebstrap and caches a
// tarball of it. built is false when another kiln cached it while this one
// waited for the lock: then tree is untouched.
func (b *Builder) buildBase(ctx context.Context, pb packageBase, tree string) (built bool, err error) {
	key := pb.Key()
	unlock, err := b.cache.build(ctx, KindBase, key)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(b.cache.entryPath(KindBase, key), "base.tar")); err == nil && !b.opts.RefreshBase {
		return false, nil
	}
	// mmdebstrap copies the shared package cache in and its downloads out.
	unlockDebs, err := b.cache.build(ctx, KindPackages, packagesKey)
	if err != nil {
		return false, err
	}
	defer unlockDebs()
	step := progress.Begin(b.sink, "base", 0, fmt.Sprintf("building debian:%s from packages with mmdebstrap", pb.Suite))
	debs := b.cache.entryPath(KindPackages, packagesKey)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return false, err
	}
	args := []string{
		"--variant=apt", "--mode=root", "--format=directory", "--arch=" + pb.Arch,
		"--include=" + strings.Join(pb.Packages, ","),
		"--aptopt=APT::Install-Recommends \"false\"",
		"--aptopt=Acquire::Retries \"3\"",
		// Package lists stay compressed: a smaller base to store and unpack.
		"--aptopt=Acquire::GzipIndexes \"true\"",
		"--aptopt=Acquire::CompressionTypes::Order:: \"gz\"",
		// The shared package cache: copied in before, new downloads copied out
		// after, the essential set's too (mmdebstrap unlinks those otherwise).
		"--skip=download/empty",
		"--skip=essential/unlink",
		// Keep the package lists: bakes install from them without an
		// apt-get update (sysprep removes them from the final image).
		"--skip=cleanup/apt/lists",
		"--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
		"--setup-hook=sync-in " + debs + " /var/cache/apt/archives/",
		"--customize-hook=sync-out /var/cache/apt/archives " + debs,
		"--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb",
	}
	if b.opts.MirrorKeyring != "" {
		dir, err := b.trustedKeys()
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		args = append(args, "--keyring="+dir)
	}
	if len(pb.Pins) > 0 {
		// Before apt's first run, so the essential set is pinned too.
		dir, err := b.cache.tempDir("pins")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		prefs := filepath.Join(dir, filepath.Base(lockPreferences))
		if err := os.WriteFile(prefs, preferencesFor(pb.Pins), 0o644); err != nil {
			return false, err
		}
		args = append(args, "--setup-hook=mkdir -p \"$1\""+filepath.Dir(lockPreferences),
			"--setup-hook=copy-in "+prefs+" "+filepath.Dir(lockPreferences)+"/")
		step.Note(fmt.Sprintf("pinned by the package lock: %d packages", len(pb.Pins)))
	}
	for _, x := range dpkgExcludes {
		args = append(args, "--dpkgopt="+x)
	}
	args = append(args, pb.Suite, tree)
	args = append(args, pb.Sources...)
	// In its own PID and mount namespaces: if kiln is killed, nothing of
	// mmdebstrap (apt, dpkg, maintainer scripts) outlives it.
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--pid", "--mount", "--propagation", "private", "--fork", "--kill-child", "mmdebstrap"}, args...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+fmt.Sprint(b.epoch.Unix()))
	if _, err := runCmd(ctx, "mmdebstrap", cmd, func(l string) {
		if strings.HasPrefix(l, "I: ") || strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			step.Note(strings.TrimSpace(l[3:]))
		}
	}); err != nil {
		return false, fmt.Errorf("building the debian:%s base: %w", pb.Suite, err)
	}
	step.Note("caching the base")
	tmp, err := b.cache.tempDir("base")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-cf", filepath.Join(tmp, "base.tar"), "-C", tree, ".")
	if _, err := runCmd(ctx, "caching the base", tarCmd, nil); err != nil {
		return false, err
	}
	meta, _ := json.MarshalIndent(struct {
		packageBase
		Built time.Time `json:"built"`
	}{pb, time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "base.json"), meta, 0o644); err != nil {
		return false, err
	}
	if err := b.cache.commit(tmp, KindBase, key); err != nil {
		return false, err
	}
	step.End("cached as " + key)
	return true, nil
}

// hostTrustedParts is where the build host's apt keeps the keys it trusts.
const hostTrustedParts = "/etc/apt/trusted.gpg.d"

// trustedKeys is a directory of the keys mmdebstrap's apt trusts when
// MirrorKeyring is set: the host's own (apt reads one directory of them),
// and that keyring. The caller removes it.
func (b *Builder) trustedKeys() (string, error) {
	key, err := filepath.Abs(b.opts.MirrorKeyring)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(key); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("mirror keyring %s: not a readable file (an OpenPGP keyring, .gpg or .asc): %v", b.opts.MirrorKeyring, err)
	}
	if !aptKeyring(key) {
		return "", fmt.Errorf("mirror keyring %s: apt reads keyrings named .gpg (binary) or .asc (armored)", b.opts.MirrorKeyring)
	}
	dir, err := b.cache.tempDir("keys")
	if err != nil {
		return "", err
	}
	host, _ := filepath.Glob(filepath.Join(hostTrustedParts, "*"))
	for _, k := range append(host, key) {
		if !aptKeyring(k) {
			continue
		}
		if err := os.Symlink(k, filepath.Join(dir, filepath.Base(k))); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// aptKeyring reports whether apt reads the file as a keyring: by its name.
func aptKeyring(path string) bool {
	ext := filepath.Ext(path)
	return ext == ".gpg" || ext == ".asc"
}
