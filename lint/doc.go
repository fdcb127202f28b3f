// Package lint inspects a golden image offline — a qcow2 or raw file, read
// in Go, no VM, no mounts — and reports every hygiene violation by name:
// what a clean image must not carry so that each clone is unique and no
// trace of the build leaks (machine-id, SSH host keys, cloud-init state,
// leases, histories, package caches, random seeds, the build host's
// resolver, an unpinned datasource list, free space holding old data, ...),
// and what every clone's first boot would rebuild that the bake could have
// built once (systemd's update stamps, ld.so.cache, the journal catalog,
// udev's hwdb).
//
// The rules read any io/fs filesystem that can also read links, so the same
// rules run on an image's root filesystem and on a directory tree.
package lint
