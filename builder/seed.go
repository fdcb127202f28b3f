package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
)

// SeedFormat is the filesystem of a seed image.
type SeedFormat string

const (
	// SeedISO is an ISO9660 volume labelled cidata (what cloud-localds writes).
	SeedISO SeedFormat = "iso"
	// SeedVFAT is a FAT volume labelled CIDATA.
	SeedVFAT SeedFormat = "vfat"
)

// ParseSeedFormat reads "iso" or "vfat".
func ParseSeedFormat(s string) (SeedFormat, error) {
	switch SeedFormat(s) {
	case SeedISO, SeedVFAT:
		return SeedFormat(s), nil
	}
	return "", fmt.Errorf("unknown seed format %q (want iso or vfat)", s)
}

// SeedFiles returns the NoCloud files of a seed, in the order cloud-localds
// lays them out; network-config only when the seed has one.
func SeedFiles(s *recipes.Seed) []iso.Entry {
	entries := []iso.Entry{{Name: "meta-data", Data: s.MetaData}}
	if s.NetworkConfig != nil {
		entries = append(entries, iso.Entry{Name: "network-config", Data: s.NetworkConfig})
	}
	return append(entries, iso.Entry{Name: "user-data", Data: s.UserData})
}

// SeedResult describes a written seed.
type SeedResult struct {
	Path         string   `json:"path"`
	Format       string   `json:"format"`
	Size         int64    `json:"size"`
	SHA256       string   `json:"sha256"`
	InstanceID   string   `json:"instanceId"`
	Hostname     string   `json:"hostname"`
	HoldsSecrets bool     `json:"holdsSecrets"`
	Warnings     []string `json:"warnings,omitempty"`
}

// WriteSeed writes a seed image atomically, stamped with modTime (the
// build's SOURCE_DATE_EPOCH; zero means epoch.Default): readable by its
// owner only when it holds secrets.
func WriteSeed(path string, format SeedFormat, s *recipes.Seed, modTime time.Time) (*SeedResult, error) {
	opts := iso.Options{Format: iso.ISO9660, ModTime: modTime}
	if format == SeedVFAT {
		opts.Format = iso.VFAT
	}
	if err := iso.WriteFile(path, seedPerm(s), opts, SeedFiles(s)); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &SeedResult{Path: path, Format: string(format), Size: int64(len(b)), SHA256: "sha256:" + hex.EncodeToString(sum[:]),
		InstanceID: s.InstanceID, Hostname: s.Hostname, HoldsSecrets: s.HoldsSecrets, Warnings: s.Warnings}, nil
}

// WriteSeedDir writes the seed's files into dir, each atomically.
func WriteSeedDir(dir string, s *recipes.Seed) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, e := range SeedFiles(s) {
		p := filepath.Join(dir, e.Name)
		if err := atomicfile.Write(p, e.Data, seedPerm(s)); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

func seedPerm(s *recipes.Seed) os.FileMode {
	if s.HoldsSecrets {
		return 0o600
	}
	return 0o644
}
