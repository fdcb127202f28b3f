package deploy

import (
	"context"
	"encoding/xml"
	"io"
)

// MetadataNamespace is the XML namespace of kiln's element in a domain's
// <metadata>. kiln owns exactly the domains (and their volumes) that carry
// it; every other domain is never touched.
const MetadataNamespace = "urn:kiln:deploy:v1"

// Metadata is what kiln records in each domain it makes: enough to know,
// from libvirt alone, which set and ordinal the domain is, where it was
// placed, and whether it still matches the fleet file.
type Metadata struct {
	XMLName      xml.Name `xml:"urn:kiln:deploy:v1 instance" json:"-"`
	Set          string   `xml:"set,attr" json:"set"`
	Ordinal      int      `xml:"ordinal,attr" json:"ordinal"`
	FaultDomain  int      `xml:"faultDomain,attr" json:"faultDomain"`
	UpdateDomain int      `xml:"updateDomain,attr" json:"updateDomain"`
	// Image is the image digest the instance's overlay sits on.
	Image string `xml:"image,attr" json:"image"`
	// Source is where the image came from: the registry reference pinned
	// to the manifest digest that was pulled, or the local file.
	Source string `xml:"source,attr,omitempty" json:"source,omitempty"`
	// Spec is the hash of everything else the instance was made from
	// (size, firmware, network, seed): a change means it is outdated.
	Spec string `xml:"spec,attr" json:"spec"`
	// Ports are the forwards of user networking, "guest:host,…" on
	// 127.0.0.1; chosen at creation, kept for the instance's life.
	Ports string `xml:"ports,attr,omitempty" json:"-"`
}

// State is a domain's run state as kiln reports it.
type State string

const (
	Running State = "running"
	Stopped State = "stopped"
	Paused  State = "paused"
	Crashed State = "crashed"
	Planned State = "planned" // not created yet
	Unknown State = "unknown"
	// Partial is an instance a crash left half-made: its overlay or seed
	// exists, its domain does not. Apply completes or removes it.
	Partial State = "partial"
)

// Instance is one kiln-owned domain as a hypervisor reports it.
type Instance struct {
	Name  string   `json:"name"`
	Host  string   `json:"host"`
	State State    `json:"state"`
	Meta  Metadata `json:"meta"`
	// Ports maps guest ports to 127.0.0.1 host ports (user networking).
	Ports map[int]int `json:"ports,omitempty"`
	// Address is the guest's IP on a libvirt network, when known.
	Address string `json:"address,omitempty"`
}

// InstanceSpec is everything a hypervisor needs to create one instance.
type InstanceSpec struct {
	Name string
	Meta Metadata
	// BasePath is the verified image on the build host; the backend makes
	// (once per host and digest) a read-only base volume from it and
	// gives the instance a copy-on-write overlay on that base.
	BasePath  string
	DiskBytes int64
	VCPUs     int
	MemoryMiB int
	Firmware  string // bios or uefi
	// Seed is the instance's NoCloud seed image (ISO bytes).
	Seed []byte
	// Network: "user" with Ports forwarded on 127.0.0.1, or a libvirt
	// network by name.
	Network     string
	NetworkName string
	Ports       []int
}

// Hypervisor is what deploy needs of one host. The libvirt backend
// implements it; unit tests use an in-memory fake.
type Hypervisor interface {
	// URI names the host (a libvirt URI).
	URI() string
	// Instances lists the domains carrying kiln's metadata (and half-made
	// instances, State Partial), and how many other domains there are
	// (never touched, only counted).
	Instances(ctx context.Context) (owned []Instance, foreign int, err error)
	// Create makes the instance's overlay, seed and domain, and starts it.
	// It is idempotent: a half-made instance (a crash) is completed.
	Create(ctx context.Context, spec InstanceSpec) error
	// Start starts a stopped instance.
	Start(ctx context.Context, name string) error
	// Restart reboots a running instance and returns once it runs again.
	Restart(ctx context.Context, name string) error
	// Delete stops and removes the instance's domain, overlay and seed.
	// Deleting what is not there is no error.
	Delete(ctx context.Context, name string) error
	// Console writes the instance's serial log from byte offset on to w
	// and returns the offset after it (to follow the log, call again).
	Console(ctx context.Context, name string, offset int64, w io.Writer) (int64, error)
}
