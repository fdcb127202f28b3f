// Package aptsources reads the Debian mirrors a host's apt is configured
// with: kiln never names a mirror itself.
package aptsources

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Mirrors are the Debian archives a package base is built from. kiln never
// names a mirror itself: they come from the build host's apt sources, or
// from configuration (the recipe's bake.mirror, or kiln.yaml's mirror).
type Mirrors struct {
	Archive  string // serves <suite> and <suite>-updates
	Security string // serves <suite>-security; may be empty
}

// SourceLines returns the one-line apt sources for suite.
func (m Mirrors) SourceLines(suite string) []string {
	lines := []string{
		fmt.Sprintf("deb %s %s main", m.Archive, suite),
		fmt.Sprintf("deb %s %s-updates main", m.Archive, suite),
	}
	if m.Security != "" {
		lines = append(lines, fmt.Sprintf("deb %s %s-security main", m.Security, suite))
	}
	return lines
}

// HostMirrors reads the build host's apt sources (sources.list and
// sources.list.d, one-line and deb822 formats) and picks the Debian archive
// and security mirrors from them.
func HostMirrors(etcApt string) (Mirrors, error) {
	var entries []aptSource
	if e, err := readOneLineSources(filepath.Join(etcApt, "sources.list")); err == nil {
		entries = append(entries, e...)
	}
	files, _ := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*"))
	sort.Strings(files)
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, ".list"):
			e, err := readOneLineSources(f)
			if err != nil {
				return Mirrors{}, err
			}
			entries = append(entries, e...)
		case strings.HasSuffix(f, ".sources"):
			e, err := readDeb822Sources(f)
			if err != nil {
				return Mirrors{}, err
			}
			entries = append(entries, e...)
		}
	}
	var m Mirrors
	for _, e := range entries {
		if e.kind != "deb" || !e.hasComponent("main") {
			continue
		}
		for _, s := range e.suites {
			switch {
			case strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates"):
				if m.Security == "" {
					m.Security = e.uri
				}
			case !strings.Contains(s, "-") && !strings.Contains(s, "/"):
				if m.Archive == "" {
					m.Archive = e.uri
				}
			}
		}
	}
	if m.Archive == "" {
		return Mirrors{}, fmt.Errorf("no Debian archive with a main component in %s/sources.list{,.d}; set bake.mirror in the recipe or mirror in kiln.yaml", etcApt)
	}
	return m, nil
}

type aptSource struct {
	kind       string
	uri        string
	suites     []string
	components []string
}

func (a aptSource) hasComponent(c string) bool {
	for _, x := range a.components {
		if x == c {
			return true
		}
	}
	return false
}

func readOneLineSources(path string) ([]aptSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []aptSource
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		fields := strings.Fields(line)
		// Options in brackets: deb [signed-by=...] uri suite comps...
		if len(fields) > 1 && strings.HasPrefix(fields[1], "[") {
			j := 1
			for j < len(fields) && !strings.HasSuffix(fields[j], "]") {
				j++
			}
			fields = append(fields[:1], fields[j+1:]...)
		}
		if len(fields) < 4 {
			continue
		}
		out = append(out, aptSource{kind: fields[0], uri: strings.TrimSuffix(fields[1], "/"), suites: []string{fields[2]}, components: fields[3:]})
	}
	return out, sc.Err()
}

func readDeb822Sources(path string) ([]aptSource, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []aptSource
	for _, stanza := range strings.Split(string(b), "\n\n") {
		fields := map[string]string{}
		last := ""
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && last != "" {
				fields[last] += " " + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, kind := range strings.Fields(fields["types"]) {
			for _, uri := range strings.Fields(fields["uris"]) {
				out = append(out, aptSource{kind: kind, uri: strings.TrimSuffix(uri, "/"),
					suites: strings.Fields(fields["suites"]), components: strings.Fields(fields["components"])})
			}
		}
	}
	return out, nil
}
