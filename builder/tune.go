package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/disk"
)

// The boot-time tuning every kiln image gets. It is what makes a kiln image
// ready sooner than a stock one (make bench measures it): cloud-init looks
// only where kiln's seeds are, skips modules that have nothing to do, and
// does not spend seconds on RSA/DSA host keys; nothing waits on a console.

// cloudConfigTuning is /etc/cloud/cloud.cfg.d/99-kiln.cfg: named to sort
// after the distribution's own files (Debian's 90_dpkg.cfg sets a
// datasource_list too), since the last file wins. datasources is the pinned
// datasource_list: NoCloud first, then what the user configures. growRoot
// says whether cloud-init grows the root partition and file system; kiln's
// own images leave that to kiln-grow-root.service (growRootFiles).
func cloudConfigTuning(datasources []string, growRoot bool) string {
	var b strings.Builder
	b.WriteString("# Written by kiln: boot-time tuning of kiln images.\n")
	fmt.Fprintf(&b, "datasource_list: [%s]\n", strings.Join(datasources, ", "))
	b.WriteString(`# ed25519 and ECDSA only: RSA and DSA key generation costs seconds on small VMs.
ssh_genkeytypes: [ed25519, ecdsa]
ssh_deletekeys: true
# kiln images configure networking with systemd-networkd.
system_info:
  network:
    renderers: [networkd]
# Only the modules kiln recipes and seeds use; the rest would only be
# imported to find they have nothing to do.
# Password logins over SSH are off in the image itself (sshd_config.d), so
# no seed needs set-passwords to rewrite sshd's config and restart it.
cloud_init_modules:
  - seed_random
  - bootcmd
  - write-files
`)
	if growRoot {
		b.WriteString("  - growpart\n  - resizefs\n")
	} else {
		b.WriteString("# growpart and resizefs: kiln-grow-root.service grows the root, when there is room.\n")
	}
	b.WriteString(`  - disk_setup
  - mounts
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
# The config-stage modules kiln uses run in the final stage. Where each
# stage is its own process (cloud-init before 24.3) the config stage is then
# masked, which saves a whole Python start-up at boot.
cloud_config_modules: []
cloud_final_modules:
  - timezone
  - runcmd
  - package-update-upgrade-install
  - write-files-deferred
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - final-message
  - power-state-change
`)
	return b.String()
}

// networkStageFiles are a drop-in for cloud-init's network stage and its
// condition: the stage runs only when the local stage left it something to
// do (see the script). Classic stage layout only: the unit is
// cloud-init.service running `cloud-init init`; with one process for all
// stages, the network stage must run to hand over.
func networkStageFiles() []treeFile {
	return []treeFile{
		{"/etc/systemd/system/cloud-init.service.d/50-kiln.conf", "# Written by kiln: boot-time tuning.\n[Service]\nExecCondition=" + networkStageScript + "\n", 0o644},
		{networkStageScript, asset("cloud-init-network-stage"), 0o755},
	}
}

const networkStageScript = "/usr/local/lib/kiln/cloud-init-network-stage"

// machineID is what /etc/machine-id holds in a finished image. Either way
// systemd makes a fresh id at the first boot and commits it once the root is
// writable. "uninitialized" also marks that boot as the first one, and
// systemd then spends seconds of a small VM's boot trying to apply unit
// presets to /etc — on the still read-only root, where it fails. A tuned
// image had its units enabled when it was baked, so its file is empty.
func machineID(bootTuning bool) string {
	if bootTuning {
		return ""
	}
	return "uninitialized\n"
}

// growRootFiles are kiln-grow-root.service and its script: they grow the
// root partition and file system to a bigger disk at boot, as cloud-init's
// growpart and resizefs modules do, but look first whether there is room.
func growRootFiles() []treeFile {
	return []treeFile{
		{"/usr/local/lib/kiln/grow-root", asset("grow-root"), 0o755},
		{"/etc/systemd/system/kiln-grow-root.service", asset("kiln-grow-root.service"), 0o644},
	}
}

// tuningCmdline is what boot tuning adds to the kernel command line of the
// images kiln assembles (offline bakes; a VM bake keeps its cloud image's
// boot loader configuration).
//
// cryptomgr.notests: the kernel tests every crypto algorithm as it is
// registered. A VM loads the accelerated implementations its CPU offers
// (AES-NI, SHA, CLMUL) at every boot, and testing those instantiates dozens
// of helper algorithms, each a module lookup that runs /sbin/modprobe: in a
// profiled boot of the network role, 70 modprobe runs became 34, and the
// accelerators loaded in 0.5 s instead of 2 s. The tests catch a broken
// implementation of an algorithm, not tampering (module signatures do
// that); a kernel booted with fips=1 runs them regardless.
const tuningCmdline = "cryptomgr.notests"

// kernelCmdline is the kernel command line of an image kiln assembles.
func kernelCmdline(bootTuning bool) string {
	if bootTuning {
		return disk.DefaultCmdline + " " + tuningCmdline
	}
	return disk.DefaultCmdline
}

// tuningKey digests what tuning writes into an image, for cache keys: a
// change to it makes a new image. Which stage layout applies follows from
// the base (its key is part of the image key), so both are digested.
func tuningKey(datasources []string, bootTuning bool) string {
	var b strings.Builder
	for _, l := range []stageLayout{stagesClassic, stagesSingleProcess} {
		files, masks, links := imageTuning("", datasources, bootTuning, l)
		fmt.Fprintf(&b, "%+v\n%q\n%+v\n", files, masks, links)
	}
	fmt.Fprintf(&b, "%q\n%q\n%q", machineID(bootTuning), generatorMasks, kernelCmdline(bootTuning))
	for _, c := range startChecks {
		fmt.Fprintf(&b, "\n%+v %+v", c, c.dropIn())
	}
	return shortDigest([]byte(b.String()))
}

// classicStageMasks are masked only where cloud-init runs each stage as its
// own process (stagesClassic): the config stage, whose modules run in the
// final stage. With one cloud-init process for all stages, a masked stage
// unit never hands over to it, and the stages after it wait forever.
var classicStageMasks = []string{"cloud-config.service"}

// tuningMasks are the units boot-time tuning masks on every image.
var tuningMasks = []string{
	// On a small VM every process at boot costs: no debug and trace
	// filesystems, no binfmt registrations, and modules that load on demand
	// anyway (device mapper, FUSE) or never matter in a VM (DRM, EFI
	// pstore) are not loaded up front.
	"sys-kernel-debug.mount", "sys-kernel-tracing.mount", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
	"modprobe@drm.service", "modprobe@efi_pstore.service", "modprobe@dm_mod.service", "modprobe@fuse.service",
	// configfs serves USB gadgets and storage targets, not a server VM: a
	// unit and a mount fewer (modprobe configfs still works).
	"sys-kernel-config.mount", "modprobe@configfs.service",
	// systemd 256 and later load udev rules and configuration passed as
	// credentials (udev.conf.*, udev.rules.*) in a unit of their own,
	// before udevd starts: kiln images take their configuration from the
	// seed, and this keeps a process off the way to the root device.
	"systemd-udev-load-credentials.service",
}

// generatorMasks are systemd generators boot-time tuning masks. systemd
// 256 and later (Debian 13) run systemd-ssh-generator at every boot: it
// probes AF_VSOCK, which loads the vsock and VMware VMCI modules — seconds
// of a small VM's boot before any unit starts — to offer SSH over vsock and
// a local AF_UNIX socket, which kiln's images do not use (their SSH is on
// the network, per the seed).
//
// Each generator is a process PID1 waits for before it starts any unit
// (0.2–1.5 s each on a small TCG guest). Also masked, as they cannot apply
// to a kiln image: the TPM2 generator (it only orders units that unlock
// disks with a TPM, and kiln images have no encrypted volumes), hibernate
// resume (a VM is not hibernated from inside) and offline system updates
// (PackageKit's, not apt's).
var generatorMasks = []string{"systemd-ssh-generator", "systemd-tpm2-generator", "systemd-hibernate-resume-generator", "systemd-system-update-generator"}

// tuningFiles are files boot-time tuning writes on every image, offline or
// VM bake.
func tuningFiles() []treeFile {
	return []treeFile{
		// A guest's CPU flags make udev load KVM for nested virtualization
		// at every boot: the largest modules a VM loads, decompressed and
		// signature-checked before the boot can go on. A blacklist only
		// stops loading by alias; `modprobe kvm_intel` (or removing this
		// file in the recipe) still gives a guest nested virtualization.
		// CPU frequency drivers load for the guest's CPU model and find no
		// frequency control in a VM (the host's is what counts): a module
		// load, and its failure, at every boot.
		{"/etc/modprobe.d/kiln-tuning.conf", "# Written by kiln: boot-time tuning. Remove to load KVM at boot for nested virtualization.\nblacklist kvm_intel\nblacklist kvm_amd\nblacklist kvm\n" +
			"# No CPU frequency control inside a VM: its drivers only fail to find any.\nblacklist acpi_cpufreq\nblacklist powernow_k8\n", 0o644},
		// No multicast name resolution on a server: LLMNR and mDNS answer
		// and probe on every link (CPU at boot), and LLMNR answers are
		// spoofable on a shared network.
		{"/etc/systemd/resolved.conf.d/50-kiln.conf", "# Written by kiln: boot-time tuning.\n[Resolve]\nLLMNR=no\nMulticastDNS=no\n", 0o644},
		// The instance's snake-oil certificate (where sysprep left
		// kiln-snakeoil.service) with an ECDSA key, not make-ssl-cert's
		// RSA-2048: about 20 s of a small TCG guest's boot, on its path. It
		// waits for cloud-init's network stage (cloud-init.service where each
		// stage is its own process), which names the host: both stay before
		// sysinit.target, so every service still finds it there.
		{"/etc/systemd/system/" + snakeoilUnit + ".d/50-kiln-tuning.conf", "# Written by kiln: boot-time tuning (see " + snakeoilScript + ").\n[Unit]\nAfter=cloud-init-network.service cloud-init.service\n\n[Service]\nExecStart=\nExecStart=" + snakeoilScript + "\n", 0o644},
		{snakeoilScript, asset("snakeoil"), 0o755},
	}
}

const snakeoilScript = "/usr/local/lib/kiln/snakeoil"

// initramfsFiles make initramfs-tools build a small initramfs: the drivers
// of virtual disk controllers instead of MODULES=most, and no hardware
// database (see the hook). Under TCG the firmware reads kernel and
// initramfs at a few MB/s: the default's 18 MB are seconds of every boot.
// Offline bakes only, where kiln builds the initramfs (rebuildInitramfs); a
// VM bake keeps its cloud image's.
func initramfsFiles() []treeFile {
	return []treeFile{
		{initramfsConf, "# Written by kiln: boot-time tuning (see " + initramfsHook + ").\nMODULES=list\n", 0o644},
		{initramfsHook, strings.ReplaceAll(asset("initramfs-hook"), "@DRIVERS@", strings.Join(vmDiskDrivers, " ")), 0o755},
	}
}

// vmDiskDrivers are the modules the small initramfs holds (those the kernel
// has): the disk controllers of KVM/QEMU (virtio, SATA, IDE, NVMe), Xen,
// Hyper-V and VMware. ext4 is in Debian's kernels.
var vmDiskDrivers = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_mmio", "sd_mod", "ahci", "ata_piix", "ata_generic", "nvme", "xen_blkfront", "hv_storvsc", "vmw_pvscsi"}

// initramfsCheck fails when an initramfs lacks a driver of vmDiskDrivers
// that its kernel has as a module: an image that could not find its root
// is never made, whatever initramfs-tools did with the list.
const initramfsCheck = `set -eu
for initrd in "${KILN_BOOT_DIR:-/boot}"/initrd.img-*; do
	v=${initrd##*/initrd.img-}
	files=$(lsinitramfs "$initrd")
	for m in "$@"; do
		f=$(modinfo -k "$v" -F filename "$m" 2>/dev/null) || continue
		case $f in "" | "(builtin)") continue ;; esac
		case "$files" in
		*"/${f##*/}"*) ;;
		*) echo "$initrd lacks $m (${f##*/}): it could not find a root disk behind that controller" >&2; exit 1 ;;
		esac
	done
done
`

const (
	initramfsHook = "/etc/initramfs-tools/hooks/kiln-tuning"
	initramfsConf = "/etc/initramfs-tools/conf.d/kiln-tuning.conf"
)

// rebuildInitramfs builds the tree's initramfs again for every kernel that
// has one, now that the tuning's configuration is in place: the base's was
// built before it, and the recipe's packages may not have touched it. The
// chroot's SOURCE_DATE_EPOCH keeps it the same bytes from bake to bake. A
// recipe that removed both files keeps the base's initramfs; one that removed
// only the hook would get an initramfs without disk drivers, and is told.
func rebuildInitramfs(ctx context.Context, c *chroot) error {
	r := root{dir: c.dir}
	hook, conf := r.exists(initramfsHook), r.exists(initramfsConf)
	switch {
	case conf && !hook:
		return fmt.Errorf("boot tuning: %s (MODULES=list) is there without %s, which adds the disk drivers: the initramfs could not find the root; remove both files in the recipe, or neither", initramfsConf, initramfsHook)
	case !hook || !r.exists("/usr/sbin/update-initramfs"):
		return nil
	}
	boot, err := r.resolve("/boot")
	if err != nil {
		return err
	}
	if initrds, _ := filepath.Glob(filepath.Join(boot, "initrd.img-*")); len(initrds) == 0 {
		return nil
	}
	if _, err = c.run(ctx, "update-initramfs", nil, "update-initramfs", "-u", "-k", "all"); err != nil {
		return err
	}
	_, err = c.run(ctx, "boot tuning: checking the initramfs for the disk drivers", nil, append([]string{"sh", "-c", initramfsCheck, "kiln-initramfs-check"}, vmDiskDrivers...)...)
	return err
}

// startCheck is a unit's separate configuration check before its daemon
// starts (its ExecStartPre), where the daemon checks the same configuration
// when it starts and fails the unit the same way. On a small VM the check
// is a second start of the daemon on the path to multi-user.target, where
// cloud-init's final stage waits; boot tuning leaves it out (reloads still
// check: ExecReload is untouched).
type startCheck struct {
	unit string // e.g. ssh.service
	line string // the check: the unit's only ExecStartPre, exactly
}

var startChecks = []startCheck{
	// OpenSSH (Debian 12 and 13): sshd -D reads and checks sshd_config and
	// exits 255, which the unit does not restart.
	{"ssh.service", "ExecStartPre=/usr/sbin/sshd -t"},
	// dnsmasq (Debian 12 and 13, the network role): checkconfig runs
	// `dnsmasq --test` with the options exec starts it with; dnsmasq
	// checks them when it starts and exits non-zero before it forks.
	{"dnsmasq.service", "ExecStartPre=/usr/share/dnsmasq/systemd-helper checkconfig"},
}

// dropIn is the drop-in that resets the unit's ExecStartPre list.
func (c startCheck) dropIn() treeFile {
	return treeFile{"/etc/systemd/system/" + c.unit + ".d/50-kiln-tuning.conf",
		"# Written by kiln: boot-time tuning. The daemon checks its configuration when it\n# starts; the separate check (" + strings.TrimPrefix(c.line, "ExecStartPre=") + ") costs a second start at\n# every boot. Reloads still check.\n[Service]\nExecStartPre=\n", 0o644}
}

// unitDirs are where systemd reads units and their drop-ins, most
// important first.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// applies reports whether the tree runs the check as the unit's only
// ExecStartPre, in its unit file and every drop-in: the reset would drop
// any other, such as one a recipe added.
func (c startCheck) applies(r root) bool {
	var unit []byte
	for _, dir := range unitDirs {
		if b, err := r.readFile(dir + "/" + c.unit); err == nil {
			unit = b
			break
		}
	}
	pre := execStartPre(string(unit))
	seen := map[string]bool{} // each drop-in once: /lib is /usr/lib on a merged-/usr system
	for _, dir := range unitDirs {
		dropIns := dir + "/" + c.unit + ".d"
		host, err := r.resolve(dropIns)
		if err != nil {
			return false
		}
		confs, _ := filepath.Glob(filepath.Join(host, "*.conf"))
		for _, conf := range confs {
			if seen[conf] {
				continue
			}
			seen[conf] = true
			b, err := r.readFile(dropIns + "/" + filepath.Base(conf))
			if err != nil {
				return false
			}
			pre = append(pre, execStartPre(string(b))...)
		}
	}
	return len(pre) == 1 && pre[0] == c.line
}

// execStartPre is the ExecStartPre lines of a unit file, trimmed.
func execStartPre(unit string) []string {
	var pre []string
	for _, l := range strings.Split(unit, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "ExecStartPre=") {
			pre = append(pre, l)
		}
	}
	return pre
}

// dropStartChecks writes the drop-in of every start check that applies. It
// runs after the recipe's bake, which installs the packages and may add
// drop-ins of its own.
func dropStartChecks(r root) error {
	for _, c := range startChecks {
		if !c.applies(r) {
			continue
		}
		f := c.dropIn()
		if err := r.writeFile(f.path, []byte(f.content), osMode(f.mode), 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// treeFile is a file tuneImage writes, owned by root.
type treeFile struct {
	path, content string
	mode          uint32
}

// unitLink enables a unit: link points at target, if the tree has it.
type unitLink struct{ target, link string }

// imageTuning is all tuneImage writes: files, units to mask, units to
// enable. tuningKey digests the same, so the cache key covers all of it.
func imageTuning(rootUUID string, datasources []string, bootTuning bool, layout stageLayout) ([]treeFile, []string, []unitLink) {
	masks := []string{
		// No interactive first-boot wizard: nobody is at the console (an
		// untuned image's /etc/machine-id says "uninitialized", which
		// systemd treats as a first boot).
		"systemd-firstboot.service",
		// Periodic apt jobs have no place in an immutable image.
		"apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "e2scrub_reap.service",
	}
	if bootTuning {
		masks = append(masks, tuningMasks...)
		if layout == stagesClassic {
			masks = append(masks, classicStageMasks...)
		}
	}
	tuning := "# Written by kiln: no boot-time tuning (a benchmark baseline).\nsystem_info:\n  network:\n    renderers: [networkd]\n"
	if bootTuning {
		tuning = cloudConfigTuning(datasources, false)
	}
	files := []treeFile{
		{"/etc/cloud/cloud.cfg.d/99-kiln.cfg", tuning, 0o644},
		{"/etc/fstab", fmt.Sprintf("# Written by kiln.\nUUID=%s / ext4 defaults,errors=remount-ro 0 1\n", rootUUID), 0o644},
		// C.UTF-8 is built into libc: no locales package, no warnings at boot.
		{"/etc/default/locale", "LANG=C.UTF-8\n", 0o644},
		{"/etc/hostname", "localhost\n", 0o644},
		// Keys only; passwords (set per instance, as hashes) are for the console.
		{"/etc/ssh/sshd_config.d/50-kiln.conf", "# Written by kiln.\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n", 0o644},
		{"/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", 0o644},
		// DHCP on every Ethernet interface until cloud-init renders the
		// instance's own network-config (its files sort first and win).
		{"/etc/systemd/network/90-kiln-dhcp.network", "# Written by kiln.\n[Match]\nName=e*\n\n[Network]\nDHCP=yes\n", 0o644},
		// Let systemd-networkd treat a link as online as soon as one interface is.
		{"/etc/systemd/system/systemd-networkd-wait-online.service.d/kiln.conf",
			"[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60\n", 0o644},
	}
	links := []unitLink{
		// networkd and resolved configure what cloud-init renders.
		{"/lib/systemd/system/systemd-networkd.service", "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"},
		{"/lib/systemd/system/systemd-networkd.socket", "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"},
		{"/lib/systemd/system/systemd-networkd-wait-online.service", "/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"},
		{"/lib/systemd/system/systemd-resolved.service", "/etc/systemd/system/multi-user.target.wants/systemd-resolved.service"},
	}
	if bootTuning && layout == stagesClassic {
		files = append(files, networkStageFiles()...)
	}
	if bootTuning {
		files = append(files, tuningFiles()...)
		files = append(files, initramfsFiles()...)
		files = append(files, growRootFiles()...)
		links = append(links, unitLink{"/etc/systemd/system/kiln-grow-root.service", "/etc/systemd/system/sysinit.target.wants/kiln-grow-root.service"})
	}
	return files, masks, links
}

// tuneImage writes kiln's image configuration into the tree: boot tuning,
// networking, locale, fstab. It runs before the recipe's bake, so a recipe
// can still override any of it; the tuning follows the base's cloud-init.
func tuneImage(r root, rootUUID string, datasources []string, bootTuning bool) error {
	files, masks, links := imageTuning(rootUUID, datasources, bootTuning, detectStageLayout(os.DirFS(r.dir)))
	for _, f := range files {
		if err := r.writeFile(f.path, []byte(f.content), osMode(f.mode), 0, 0); err != nil {
			return err
		}
	}
	for _, unit := range masks {
		if err := r.symlink("/dev/null", "/etc/systemd/system/"+unit); err != nil {
			return err
		}
	}
	if bootTuning {
		for _, g := range generatorMasks {
			if err := r.symlink("/dev/null", "/etc/systemd/system-generators/"+g); err != nil {
				return err
			}
		}
	}
	for _, l := range links {
		if r.exists(l.target) {
			if err := r.symlink(l.target, l.link); err != nil {
				return err
			}
		}
	}
	return nil
}
