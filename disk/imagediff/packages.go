package imagediff

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// Package is one package dpkg records as installed.
type Package struct {
	Name    string `json:"name"`
	Arch    string `json:"arch"`
	Version string `json:"version"`
}

// StatusFile is where dpkg records what is installed.
const StatusFile = "var/lib/dpkg/status"

// maxStatus bounds the status file read from an image (a full desktop
// system's is a few MiB).
const maxStatus = 64 << 20

// Packages lists the packages installed in fsys, by name then
// architecture: those whose dpkg status ends in "installed". A tree without
// dpkg has none.
func Packages(fsys fs.FS) ([]Package, error) {
	f, err := fsys.Open(StatusFile)
	if errors.Is(err, fs.ErrNotExist) {
		return []Package{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStatus+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", StatusFile, err)
	}
	if len(data) > maxStatus {
		return nil, fmt.Errorf("%s: larger than %d MiB", StatusFile, maxStatus>>20)
	}
	pkgs, err := parseStatus(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", StatusFile, err)
	}
	return pkgs, nil
}

// parseStatus reads dpkg's status format: stanzas of "Field: value" lines
// (continuation lines start with a space) separated by blank lines.
func parseStatus(data []byte) ([]Package, error) {
	out := []Package{}
	fields := map[string]string{}
	flush := func() {
		st := strings.Fields(fields["Status"])
		if fields["Package"] != "" && len(st) == 3 && st[2] == "installed" {
			out = append(out, Package{Name: fields["Package"], Arch: fields["Architecture"], Version: fields["Version"]})
		}
		clear(fields)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxStatus)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// a continuation of the field before: no field kept here needs it
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out, nil
}
