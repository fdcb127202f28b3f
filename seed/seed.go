// Package seed writes the NoCloud seed of one instance: the documents
// recipes render for it (user-data, meta-data, network-config) as an
// ISO9660 cidata image, a FAT CIDATA image or plain files. It pairs
// recipes with iso, so iso stays recipe-free; the bake pipeline, kiln test,
// fleets and the Packer plugin all make seeds through it.
package seed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
)

// Format is the filesystem of a seed image.
type Format string

const (
	// ISO is an ISO9660 volume labelled cidata (what cloud-localds writes).
	ISO Format = "iso"
	// VFAT is a FAT volume labelled CIDATA.
	VFAT Format = "vfat"
)

// ParseFormat reads "iso" or "vfat".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case ISO, VFAT:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown seed format %q (want iso or vfat)", s)
}

// Options shape a seed image.
type Options struct {
	// Format is ISO (the default when empty) or VFAT.
	Format Format
	// ModTime stamps the image: the build's SOURCE_DATE_EPOCH; zero means
	// epoch.Default.
	ModTime time.Time
}

// Files returns the NoCloud files of a seed, in the order cloud-localds
// lays them out; network-config only when the seed has one.
func Files(s *recipes.Seed) []iso.Entry {
	entries := []iso.Entry{{Name: "meta-data", Data: s.MetaData}}
	if s.NetworkConfig != nil {
		entries = append(entries, iso.Entry{Name: "network-config", Data: s.NetworkConfig})
	}
	return append(entries, iso.Entry{Name: "user-data", Data: s.UserData})
}

// Result describes a written seed.
type Result struct {
	Path         string   `json:"path"`
	Format       string   `json:"format"`
	Size         int64    `json:"size"`
	SHA256       string   `json:"sha256"`
	InstanceID   string   `json:"instanceId"`
	Hostname     string   `json:"hostname"`
	HoldsSecrets bool     `json:"holdsSecrets"`
	Warnings     []string `json:"warnings"`
}

// Write writes a seed image at path atomically: readable by its owner only
// when it holds secrets.
func Write(path string, s *recipes.Seed, opts Options) (*Result, error) {
	io := iso.Options{Format: iso.ISO9660, ModTime: opts.ModTime}
	switch opts.Format {
	case "", ISO:
		opts.Format = ISO
	case VFAT:
		io.Format = iso.VFAT
	default:
		return nil, fmt.Errorf("seed: unknown format %q (want iso or vfat)", opts.Format)
	}
	var buf bytes.Buffer
	if err := iso.Write(&buf, io, Files(s)); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, buf.Bytes(), perm(s)); err != nil {
		return nil, err
	}
	sum := digest.Bytes(buf.Bytes())
	return &Result{Path: path, Format: string(opts.Format), Size: sum.Size, SHA256: sum.String(),
		InstanceID: s.InstanceID, Hostname: s.Hostname, HoldsSecrets: s.HoldsSecrets, Warnings: orEmpty(s.Warnings)}, nil
}

// WriteDir writes the seed's files into dir, each atomically.
func WriteDir(dir string, s *recipes.Seed) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	written := []string{}
	for _, e := range Files(s) {
		p := filepath.Join(dir, e.Name)
		if err := atomicfile.Write(p, e.Data, perm(s)); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

func perm(s *recipes.Seed) os.FileMode {
	if s.HoldsSecrets {
		return 0o600
	}
	return 0o644
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
