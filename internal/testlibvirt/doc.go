// Package testlibvirt runs real libvirt daemons for kiln's deploy tests:
// libvirtd (the qemu:///system driver, as root) with a virtlogd of its own,
// each in a private mount namespace that sees fresh directories in place of
// libvirt's system ones:
//
//	Dir/run   -> /run                libvirt/libvirt-sock (Socket), virtlogd-sock, the pid files
//	Dir/etc   -> /etc/libvirt        libvirtd.conf, virtlogd.conf, qemu.conf, written by Start
//	Dir/lib   -> /var/lib/libvirt    domains, pools, NVRAM
//	Dir/cache -> /var/cache/libvirt  QEMU's capabilities, seeded from the shared test cache
//	Dir/log   -> /var/log/libvirt    libvirtd.log (Log), virtlogd.log, qemu/<domain>.log, *.out
//	Dir/pool                         PoolDir, for a dir-type storage pool
//
// So several daemons run at once (two daemons are two hosts), none collides
// with a system libvirtd (whose socket and pid files are in the host's
// /run), the host's /run/libvirt is never touched, and nothing stays
// mounted: the mounts belong to the namespaces, which end with their last
// process. Clients outside reach a daemon by [Daemon.URI],
// qemu+unix:///system?socket=<Dir>/run/libvirt/libvirt-sock: virsh -c,
// go-libvirt's ConnectToURI, kiln.
//
// A test calls testutil.Integration first, then [Start], which needs root,
// libvirtd, virtlogd and virsh (testutil: a skip on a laptop, a failure
// under CI=true). A start takes about 0.3 s once QEMU's capabilities are
// cached (testutil.CacheRoot), 9 s the first time. Stop kills the daemons
// and whatever else runs in their namespaces, a guest's QEMU included.
//
// What deploy needs to know, on Debian 12 (libvirt 9.0.0, QEMU 7.2); the
// tests check the points marked so:
//
//   - Domains must say type='qemu' (tested: it gives -accel tcg). /dev/kvm
//     exists, so libvirt offers type='kvm' too, but guests hang under it
//     here. The CPU defaults to qemu64; mode='maximum' gives -cpu max, and
//     libvirt refuses host-passthrough for type='qemu'.
//   - The emulator is /usr/bin/qemu-system-x86_64 (tested); machines pc
//     (pc-i440fx-7.2, the default) and q35 (pc-q35-7.2).
//   - UEFI: <os firmware='efi'> needs <features><acpi/></features>, and by
//     itself picks OVMF_CODE_4M.ms.fd, Secure Boot with Microsoft's keys and
//     SMM, which refuses an unsigned systemd-boot. Turning the firmware
//     features secure-boot and enrolled-keys off picks OVMF_CODE_4M.fd
//     (tested). A guest's NVRAM is made at its first start, in
//     /var/lib/libvirt/qemu/nvram/<name>_VARS.fd; from then on libvirt
//     undefines the domain only with DomainUndefineNvram (or KeepNvram).
//   - Port forwards on user networking: libvirtxml v1.12008.0 has
//     DomainInterfaceSource.User, DomainInterface.PortForward
//     (DomainInterfaceSourcePortForward: Proto, Address, Dev, Ranges of
//     Start, End, To, Exclude) and DomainInterface.Backend (Type "passt").
//     libvirt 9.0.0 forwards ports only with the passt backend, and its
//     parser rejects <backend type='passt'/> (libvirt issue 462); it accepts
//     <portForward> on the default SLIRP backend and keeps it, but forwards
//     nothing (its QEMU driver never writes hostfwd). What works: QEMU's
//     own SLIRP through <qemu:commandline> (libvirtxml's
//     Domain.QEMUCommandline), "-netdev user,id=N,hostfwd=tcp:127.0.0.1:H-:G
//     -device virtio-net-pci,netdev=N" (tested: defined, and the QEMU
//     command line carries the hostfwd). libvirt marks such a domain
//     tainted (custom-argv), and the NIC is not in its <devices>.
//   - No guest is started by these tests. What one needs is there: the
//     emulator (libvirtd runs it to probe its capabilities, inside the
//     namespace), SeaBIOS and OVMF, virtlogd for the console and log.
//     qemu.conf sets cgroup_controllers = [] so that libvirt, with no
//     systemd to ask, leaves the host's cgroups alone: untried until a
//     guest starts.
//   - There is no libvirt network: Dir/etc defines none, so no virbr0 and
//     no firewall rules on the host (tested: no new host interfaces). User
//     networking needs neither.
package testlibvirt
