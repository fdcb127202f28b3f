// Package boot is the machinery every kiln component that runs a guest
// shares: start an image under QEMU through a copy-on-write overlay (the
// image itself is never written), with a NoCloud seed and forwarded ports;
// follow its serial console and stop waiting when it says the guest can
// never come up; log in over SSH once commands really run; and read
// cloud-init's verdict, or, when it never comes, name the stage that holds
// cloud-init up. The VM bake and kiln test use it; fleets and the
// Packer plugin can, without importing the bake pipeline.
//
// A booted guest's disks, in order (so data disks get the names a recipe
// expects):
//
//	vda        overlay.qcow2 in the work dir -> the image (read-only to QEMU)
//	vdb, vdc   blank data disks, when asked for
//	last       the seed image, read-only (a virtio disk, not a CD-ROM:
//	           cloud kernels carry virtio drivers, not always ATAPI ones)
//
// Network interface i is a virtio NIC on its own QEMU user network; each
// requested guest port is forwarded from a free port on 127.0.0.1, so the
// host reaches the guest only through loopback.
package boot
