package builder

import (
	"bufio"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kiln-project/kiln/manifest"
)

// installedPackages reads the dpkg status database of a root filesystem.
func installedPackages(fsys fs.FS) ([]manifest.Package, error) {
	f, err := fsys.Open("var/lib/dpkg/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []manifest.Package
	var cur manifest.Package
	installed := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	flush := func() {
		if installed && cur.Name != "" {
			out = append(out, cur)
		}
		cur, installed = manifest.Package{}, false
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
