package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
	"github.com/kiln-project/kiln/seed"
)

// Resolved is a set whose image is on this machine, verified.
type Resolved struct {
	Set *Set
	// Path is the verified qcow2; Digest its sha256 (the image digest
	// kiln records in each instance). Pinned is the registry reference by
	// digest, for registry images.
	Path   string
	Digest string
	Pinned string
}

// Resolve makes a set's image available locally: a local file is checked
// against its manifest (an image that changed after its bake is refused);
// a registry or layout image is pulled, verified, into cacheDir.
func Resolve(ctx context.Context, s *Set, c *registry.Client, cacheDir string) (*Resolved, error) {
	if s.Image.IsFile() {
		m := s.Image.Manifest
		f, err := os.Open(s.Image.File)
		if err != nil {
			return nil, err
		}
		h, n, err := v1.SHA256(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(m.Artifacts) > 0 && (m.Artifacts[0].SHA256 != h.String() || m.Artifacts[0].Size != n) {
			return nil, &recipes.Error{Pos: s.Position("image"), Path: "image",
				Msg: fmt.Sprintf("%s has digest %s, its manifest says %s: the image changed after its bake; bake it again", s.Image.Ref, h, m.Artifacts[0].SHA256)}
		}
		if err := s.UseManifest(m); err != nil {
			return nil, err
		}
		return &Resolved{Set: s, Path: s.Image.File, Digest: h.String()}, nil
	}
	dir := filepath.Join(cacheDir, "deploy", "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, s.Name+".qcow2")
	res, err := c.Pull(ctx, registry.PullRequest{Ref: s.Image.Remote, Out: out})
	if err != nil {
		return nil, &recipes.Error{Pos: s.Position("image"), Path: "image", Msg: err.Error()}
	}
	if res.Manifest == "" {
		return nil, &recipes.Error{Pos: s.Position("image"), Path: "image", Msg: s.Image.Ref + " has no kiln manifest attached: deploy needs one (push the image with kiln push)"}
	}
	m, err := manifest.Read(res.Manifest)
	if err != nil {
		return nil, err
	}
	if err := s.UseManifest(m); err != nil {
		return nil, err
	}
	// One file per digest: instances of two sets on the same image share it.
	final := filepath.Join(dir, strings.TrimPrefix(res.DiskDigest, "sha256:")+".qcow2")
	if err := os.Rename(out, final); err != nil {
		return nil, err
	}
	os.Remove(res.Manifest)
	pinned := "oci:" + s.Image.Remote.Layout + "@" + res.Digest
	if s.Image.Remote.Remote != nil {
		pinned = "oci://" + s.Image.Remote.Remote.Context().Name() + "@" + res.Digest
	}
	return &Resolved{Set: s, Path: final, Digest: res.DiskDigest, Pinned: pinned}, nil
}

// Desired lists the instances the set wants, placed, each with its seed.
// Secrets in the recipe's boot section are resolved here, from the
// environment or files, and go only into the seed volumes.
//
// actual are the instances the hosts hold (any set's): the set's existing
// ordinals are kept (Spread.PlaceKeeping).
func (r *Resolved) Desired(actual []Instance) ([]Desired, error) {
	s := r.Set
	var existing, protected []int
	for _, a := range actual {
		if o, ok := ParseInstanceName(s.Name, a.Name); ok && a.Meta.Set == s.Name && a.State != Partial {
			existing = append(existing, o)
			if a.Meta.Protection().ScaleIn {
				protected = append(protected, o)
			}
		}
	}
	return r.DesiredAt(s.Spread().PlaceKeeping(s.Capacity, existing, protected))
}

// DesiredAt makes the instances of the given placements, each with its
// seed: a surge instance's, or one being replaced.
func (r *Resolved) DesiredAt(placements []Placement) ([]Desired, error) {
	s := r.Set
	var out []Desired
	for _, p := range placements {
		sd, err := s.Recipe.Seed(recipes.Instance{Name: p.Name, Index: p.Ordinal}, recipes.StageBoot, s.Recipe.Recipe.EnvResolver())
		if err != nil {
			return nil, err
		}
		var iso9660 bytes.Buffer
		if err := iso.Write(&iso9660, iso.Options{Format: iso.ISO9660}, seed.Files(sd)); err != nil {
			return nil, err
		}
		spec := InstanceSpec{
			Name:        p.Name,
			Meta:        Metadata{Set: s.Name, Ordinal: p.Ordinal, FaultDomain: p.FaultDomain, UpdateDomain: p.UpdateDomain, Image: r.Digest, Source: r.source()},
			BasePath:    r.Path,
			DiskBytes:   int64(s.Size.Disk),
			VCPUs:       s.Size.VCPUs,
			MemoryMiB:   int(int64(s.Size.Memory) >> 20),
			Firmware:    s.Firmware,
			Seed:        iso9660.Bytes(),
			Network:     networkKind(s.Network.Mode),
			NetworkName: s.Network.Name,
			Ports:       s.Network.Ports,
		}
		spec.Meta.Spec = specHash(spec)
		out = append(out, Desired{Host: p.Host, Spec: spec})
	}
	return out, nil
}

// source is what an instance records as its image's origin.
func (r *Resolved) source() string {
	if r.Pinned != "" {
		return r.Pinned
	}
	return r.Path
}

func networkKind(m NetworkMode) string {
	if m == LibvirtNetwork {
		return "network"
	}
	return "user"
}

// specHash sums everything an instance is made from but its image: a
// change makes the instance outdated.
func specHash(s InstanceSpec) string {
	h := sha256.New()
	ports := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = strconv.Itoa(p)
	}
	seedSum := sha256.Sum256(s.Seed)
	fmt.Fprintf(h, "disk=%d\nvcpus=%d\nmemory=%d\nfirmware=%s\nnetwork=%s/%s\nports=%s\nseed=%x\n",
		s.DiskBytes, s.VCPUs, s.MemoryMiB, s.Firmware, s.Network, s.NetworkName, strings.Join(ports, ","), seedSum)
	if len(s.Listen) > 0 { // only then: the hash of every other instance stays what it was
		fmt.Fprintf(h, "listen=%s\n", listenForwards(s.Listen))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
