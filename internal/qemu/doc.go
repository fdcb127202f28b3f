// Package qemu finds and drives QEMU and qemu-img for kiln: it detects the
// accelerator that really works here (KVM only with hardware
// virtualization, TCG otherwise), finds OVMF for UEFI guests, builds
// qemu-system-x86_64 command lines as pure data ([Config.Args]), boots
// machines with their serial console captured to a file ([Start],
// [Machine.WaitConsole]), waits for power-off or stops them through QMP
// ([Machine.Wait], [Machine.Stop]), and wraps the qemu-img operations the
// image pipeline needs ([Img]).
//
// Every machine runs in its own process group; cancelling the context
// given to [Start], [Machine.Kill] or a [Machine.Stop] that runs out of
// time kills the whole group, so no QEMU outlives its caller's intent.
//
// Guests reach the host only through QEMU user networking, and host ports
// of forwards are always bound to 127.0.0.1.
//
// # Images: formats stated, chains stated, nothing followed
//
// An image kiln did not make may name files of the host: a qcow2 backing
// file, a vmdk extent. QEMU and qemu-img open what an image names unless
// told otherwise, and probe the format of an image whose format is not
// given. kiln checks such images first (disk/image.Check); this package
// then hands them over so that a header the check missed still pulls in
// nothing: every image is an [Image] (or a [Drive]) with its format
// stated, qcow2 or raw, and its backing chain stated by kiln, as a QEMU
// block node graph:
//
//	{"driver":"qcow2","node-name":"drive0","discard":"unmap",
//	 "file":{"driver":"file","filename":"/w/vm.qcow2","discard":"unmap"},
//	 "backing":{"driver":"raw","read-only":true,
//	            "file":{"driver":"file","filename":"/cache/base.raw","read-only":true}}}
//
// The bottom qcow2 node of a chain has "backing": null: QEMU opens no
// backing file for it, whatever its header names, and its unallocated
// clusters read as zeros. Raw nodes take no backing option. File names
// are JSON strings given to the file driver: no protocol prefix ("a:b" is
// a file), no json: pseudo-protocol, no comma escaping.
//
// QEMU gets the graph with -blockdev (which takes JSON) and the device
// with -device virtio-blk-pci,drive=drive0 or ide-cd,drive=drive0, in
// place of -drive. Read-only drives and CD-ROMs have "read-only": true on
// both nodes; writable disks "discard": "unmap" on both, so a guest's
// fstrim reaches the image file. Backing images are always read-only.
// (The UEFI firmware pflash drives stay -drive if=pflash,format=raw: kiln's
// firmware files, stated raw.)
//
// qemu-img 7.2 (Debian 12) gets the same graph as a json: filename, for
// the operations kiln runs on images it did not make or on its own chains:
// [Img.InfoImage], [Img.CheckImage], [Img.CompareImages],
// [Img.ConvertImage]. What qemu-img 7.2 offers otherwise, tried:
//
//   - -f FORMAT stops format probing but still opens the header's backing
//     file (qemu-img check -f qcow2 x.qcow2 opens it);
//   - --image-opts takes the same options as dotted key=value pairs but
//     cannot spell null: backing=null names a node called "null" (an
//     error), backing= is the deprecated empty-string form;
//   - json: filenames take the whole graph, "backing": null included, and
//     are what this package uses.
//
// qemu-img info never opens a backing file (and refuses a stated one), so
// InfoImage states the top image only; it still reports the name its
// header records. [Img.CreateOverlay] runs qemu-img create -u, which
// records the base without opening it (without -u, qemu-img opens the
// base and its whole chain, even when given the size), after reading the
// base's size with InfoImage when none is given.
//
// The path-taking [Img.Info] and [Img.Check] follow nothing either: they
// state the format as kiln sees it (qcow2 when the file starts with the
// qcow2 magic, raw otherwise, so qemu-img never probes a vmdk descriptor
// and opens its extents). [Img.Compare] and [Img.Convert] by path still
// let qemu-img probe and follow the header, for images kiln made; they are
// deprecated in favour of the Image forms.
//
// # Limits
//
// External data files cannot be switched off this way: a qcow2 header
// with the external data file feature names a file that QEMU 7.2 opens
// even under -blockdev or json:, and "data-file" cannot be null (its QAPI
// type is a BlockdevRef, not BlockdevRefOrNull). So [Start] and the Img
// methods taking Images read the first 80 bytes of every qcow2 image of a
// chain and refuse one with that feature ([ErrExternalData]);
// disk/image.Check refuses it too. An image rewritten between that read
// and QEMU's open could still slip one in: images kiln hands to QEMU live
// in its cache and work directories, where nobody else writes.
//
// The package imports no other kiln package and uses the standard library
// only.
package qemu
