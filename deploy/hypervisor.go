package deploy

import (
	"context"
	"encoding/xml"
	"io"
	"strings"
	"time"
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
	// Listen are forwards from fixed host addresses, "guest=IP:PORT,…":
	// a balancer VM's listen address.
	Listen string `xml:"listen,attr,omitempty" json:"-"`
	// Protect is the instance's protection, set by `kiln deploy protect`:
	// "scale-in", "scale-set-actions", both (comma-separated) or none.
	Protect string `xml:"protect,attr,omitempty" json:"protect,omitempty"`
}

// Protection is what an instance is protected from (Azure's instance
// protection): scale-in keeps it when the capacity falls (by hand or by
// autoscale); scale-set actions keep upgrades and repairs away from it.
type Protection struct {
	ScaleIn         bool `json:"scaleIn"`
	ScaleSetActions bool `json:"scaleSetActions"`
}

// Protection reads the instance's protection.
func (m Metadata) Protection() Protection {
	var p Protection
	for _, w := range strings.Split(m.Protect, ",") {
		switch w {
		case "scale-in":
			p.ScaleIn = true
		case "scale-set-actions":
			p.ScaleSetActions = true
		}
	}
	return p
}

// String is the Protect attribute of p.
func (p Protection) String() string {
	var w []string
	if p.ScaleIn {
		w = append(w, "scale-in")
	}
	if p.ScaleSetActions {
		w = append(w, "scale-set-actions")
	}
	return strings.Join(w, ",")
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
	// Listen forwards fixed host addresses to guest ports (user
	// networking): guest port → IPv4:PORT. A balancer VM's listen.
	Listen map[int]string
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
	// Protect records the instance's protection in its metadata.
	Protect(ctx context.Context, name string, p Protection) error
	// Stats reads the instance's CPU use so far: autoscale's cpu metric is
	// its growth over an interval.
	Stats(ctx context.Context, name string) (Stats, error)
	// Console writes the instance's serial log from byte offset on to w
	// and returns the offset after it (to follow the log, call again).
	Console(ctx context.Context, name string, offset int64, w io.Writer) (int64, error)
}

// Stats is an instance's use of its virtual hardware, as the hypervisor
// counts it.
type Stats struct {
	// CPUTime is the CPU time all of its vCPUs used since it started.
	CPUTime time.Duration
	VCPUs   int
}

// CPUPercent is the percentage of its vCPUs an instance used between two
// Stats taken wall apart: 0-100, or false when the two do not belong to
// one run (the instance restarted in between) or wall is not positive.
func CPUPercent(before, after Stats, wall time.Duration) (float64, bool) {
	if wall <= 0 || after.VCPUs <= 0 || after.CPUTime < before.CPUTime {
		return 0, false
	}
	p := 100 * float64(after.CPUTime-before.CPUTime) / (float64(wall) * float64(after.VCPUs))
	return min(p, 100), true
}
