// Package registry publishes kiln images to OCI registries and OCI image
// layout directories and gets them back: the native kiln format (an index
// whose one linux/amd64 manifest carries the qcow2 as a blob), a KubeVirt
// containerDisk and a podman-machine index; the kiln manifest and an SBOM as
// referrers; cosign-format signatures; resumable, verified pulls into a
// content-addressed blob cache.
//
// The protocol is github.com/google/go-containerregistry's; this package
// adds kiln's formats, verification and resume on top. It sits below builder
// and deploy and may use disk/image and internal/* only.
package registry

import (
	// The protocol library, kept in go.mod from the first commit of the package.
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
)
