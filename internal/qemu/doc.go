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
// The package imports no other kiln package and uses the standard library
// only.
package qemu
