package builder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/recipes"
)

// Manifest describes a baked image: what went in, and what came out.
type Manifest struct {
	Kiln      ManifestKiln   `json:"kiln"`
	Recipe    ManifestRecipe `json:"recipe"`
	Base      ManifestBase   `json:"base"`
	OS        ManifestOS     `json:"os"`
	Disk      ManifestDisk   `json:"disk"`
	Packages  []Package      `json:"packages"`
	Artifacts []Artifact     `json:"artifacts"`
	// Checks are the recipe's and roles' checks, so kiln test and deploy
	// health probes can run them with only the image at hand.
	Checks []recipes.Check  `json:"checks,omitempty"`
	Build  ManifestBuildRun `json:"build"`
}

// ManifestKiln names the kiln that built the image.
type ManifestKiln struct {
	Version     string `json:"version"`
	ImageLayout string `json:"imageLayout"`
}

// ManifestRecipe identifies the recipe.
type ManifestRecipe struct {
	Name     string   `json:"name"`
	File     string   `json:"file"`
	Digest   string   `json:"digest"`
	ImageKey string   `json:"imageKey"`
	Roles    []string `json:"roles,omitempty"`
}

// ManifestBase identifies the base the image was built from.
type ManifestBase struct {
	Ref     string   `json:"ref"`
	Kind    string   `json:"kind"` // packages, image
	Key     string   `json:"key,omitempty"`
	Digest  string   `json:"digest,omitempty"` // for image bases: sha256 of the base image
	Sources []string `json:"sources,omitempty"`
}

// ManifestOS is what the image runs.
type ManifestOS struct {
	Distro    string `json:"distro"`
	Release   string `json:"release"`
	Kernel    string `json:"kernel"`
	CloudInit string `json:"cloudInit"`
}

// ManifestDisk describes the disk.
type ManifestDisk struct {
	Format      string   `json:"format"`
	Compression string   `json:"compression"`
	Firmware    []string `json:"firmware"`
	VirtualSize int64    `json:"virtualSize"`
	FileSize    int64    `json:"fileSize"`
	RootUUID    string   `json:"rootUUID"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// Artifact is one file the build produced.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ManifestBuildRun records how the build ran (not part of any digest).
type ManifestBuildRun struct {
	Mode            string  `json:"mode"` // offline, vm
	Seconds         float64 `json:"seconds"`
	SourceDateEpoch int64   `json:"sourceDateEpoch"`
}

// writeManifest writes m as JSON, atomically.
func writeManifest(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// ReadManifest reads a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return &m, nil
}

// ManifestPath is where the manifest of an image lives: beside it,
// web.qcow2 -> web.manifest.json.
func ManifestPath(image string) string {
	return strings.TrimSuffix(image, filepath.Ext(image)) + ".manifest.json"
}

// installedPackages reads the dpkg status database of a root filesystem.
func installedPackages(fsys fs.FS) ([]Package, error) {
	f, err := fsys.Open("var/lib/dpkg/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Package
	var cur Package
	installed := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	flush := func() {
		if installed && cur.Name != "" {
			out = append(out, cur)
		}
		cur, installed = Package{}, false
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Arch = v
		case "Status":
			installed = strings.HasSuffix(v, " installed")
		}
	}
	flush()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, sc.Err()
}

func packageVersion(pkgs []Package, name string) string {
	for _, p := range pkgs {
		if p.Name == name {
			return p.Version
		}
	}
	return ""
}

// osRelease reads ID and VERSION_CODENAME from os-release.
func osRelease(fsys fs.FS) (distro, release string) {
	b, err := fs.ReadFile(fsys, "etc/os-release")
	if err != nil {
		if b, err = fs.ReadFile(fsys, "usr/lib/os-release"); err != nil {
			return "", ""
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "ID":
			distro = v
		case "VERSION_CODENAME":
			release = v
		}
	}
	return distro, release
}

// kernelVersion is the version of the kernel /vmlinuz points at, or else
// the newest /boot/vmlinuz-*.
func kernelVersion(fsys fs.FS) string {
	if target, err := fs.ReadLink(fsys, "vmlinuz"); err == nil {
		return strings.TrimPrefix(path.Base(target), "vmlinuz-")
	}
	kernels, _ := fs.Glob(fsys, "boot/vmlinuz-*")
	if len(kernels) == 0 {
		return ""
	}
	sort.Strings(kernels)
	return strings.TrimPrefix(path.Base(kernels[len(kernels)-1]), "vmlinuz-")
}
