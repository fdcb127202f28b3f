package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Status is what an instance is doing, as the topology shows it: a
// hypervisor's run state (running, stopped, paused, crashed, partial,
// unknown: the same words, so one converts as it is), or what deploy knows
// beyond it (planned, creating, deleting; healthy or unhealthy once probed).
type Status string

// The statuses the graph colours; others are drawn plain.
const (
	StatusPlanned   Status = "planned" // in the fleet file, not created yet
	StatusCreating  Status = "creating"
	StatusRunning   Status = "running" // booted, health not probed yet
	StatusHealthy   Status = "healthy"
	StatusUnhealthy Status = "unhealthy"
	StatusStopped   Status = "stopped"
	StatusPaused    Status = "paused"
	StatusCrashed   Status = "crashed"
	StatusPartial   Status = "partial" // half-made by a crash
	StatusDeleting  Status = "deleting"
	StatusUnknown   Status = "unknown"
)

// statusStyles are the fill colours of known statuses, in the order the
// Mermaid classes are written.
var statusStyles = []struct {
	status Status
	fill   string
}{
	{StatusPlanned, "#ffffff"}, {StatusCreating, "#fff3b0"}, {StatusRunning, "#cfe2ff"}, {StatusHealthy, "#c7f0c2"},
	{StatusUnhealthy, "#ffd59e"}, {StatusStopped, "#e0e0e0"}, {StatusPaused, "#e0e0e0"}, {StatusCrashed, "#ff9c8f"},
	{StatusPartial, "#ffd59e"}, {StatusDeleting, "#bdbdbd"}, {StatusUnknown, "#f5f5f5"},
}

// Topology is a fleet as kiln deploy graph draws it: hosts, the sets placed
// on them and their instances. PlannedTopology makes one from a fleet file
// alone; the reconciler fills in what it finds on the hosts.
type Topology struct {
	Title string   // usually the fleet file
	Hosts []string // libvirt URIs, in the order they are drawn
	Sets  []TopologySet
}

// TopologySet is one set of a topology.
type TopologySet struct {
	Name          string
	Kind          Kind
	Image         string // the reference as written
	Digest        string // sha256:... once known
	FaultDomains  int
	UpdateDomains int
	LoadBalancer  *LoadBalancer // nil for none
	Instances     []TopologyInstance
}

// LoadBalancer is what clients connect to in front of a set.
type LoadBalancer struct {
	Address string // host:port, e.g. 127.0.0.1:8080
	VM      string // the balancer VM (NAME-lb); "" for an HAProxy on the host
}

// label is the balancer's drawn text, a line each.
func (l *LoadBalancer) label() []string {
	if l.VM != "" {
		return []string{"load balancer", l.VM + " (VM)", l.Address}
	}
	return []string{"load balancer", l.Address}
}

// TopologyInstance is one instance of a set.
type TopologyInstance struct {
	Name         string
	FaultDomain  int
	UpdateDomain int
	Host         string // libvirt URI
	Status       Status
	Ports        []Forward // user networking
	IP           string    // on a libvirt network, once known
}

// Forward is a guest port forwarded to a port on the host's 127.0.0.1.
type Forward struct {
	HostPort  int // 0 until one is chosen
	GuestPort int
}

// PlannedTopology is the topology a fleet file asks for: every instance
// placed and "planned", its ports not yet given host ports.
func PlannedTopology(f *Fleet) Topology {
	t := Topology{Title: filepath.Base(f.File)}
	for _, s := range f.Sets {
		for _, h := range s.Hosts {
			if !slices.Contains(t.Hosts, h) {
				t.Hosts = append(t.Hosts, h)
			}
		}
		ts := TopologySet{Name: s.Name, Kind: s.Kind, Image: s.Image.Ref, Digest: imageDigest(s.Image),
			FaultDomains: s.FaultDomains, UpdateDomains: s.UpdateDomains}
		for _, p := range s.Placements() {
			in := TopologyInstance{Name: p.Name, FaultDomain: p.FaultDomain, UpdateDomain: p.UpdateDomain, Host: p.Host, Status: StatusPlanned}
			if s.Network.Mode == UserNetwork {
				for _, port := range s.Network.Ports {
					in.Ports = append(in.Ports, Forward{GuestPort: port})
				}
			}
			ts.Instances = append(ts.Instances, in)
		}
		t.Sets = append(t.Sets, ts)
	}
	return t
}

// ObservedTopology is the fleet's topology as its hosts hold it: each
// instance the file plans, with the state, forwards and address its host
// reports (still "planned" when it has none), followed by the instances of
// the file's sets the hosts hold beyond the plan (left for apply to remove).
// A set's digest is the one its instances run when the file does not pin it.
func ObservedTopology(f *Fleet, actual []Instance) Topology {
	t := PlannedTopology(f)
	for si := range t.Sets {
		ts := &t.Sets[si]
		found := map[string]bool{}
		seen := func(in *TopologyInstance, a Instance) {
			found[a.Name] = true
			observe(in, a)
			if ts.Digest == "" && a.State != Partial {
				ts.Digest = a.Meta.Image
			}
		}
		for ii := range ts.Instances {
			for _, a := range actual {
				if a.Name == ts.Instances[ii].Name && a.Meta.Set == ts.Name && !found[a.Name] {
					seen(&ts.Instances[ii], a)
				}
			}
		}
		for _, a := range actual {
			if a.Meta.Set == ts.Name && !found[a.Name] {
				in := TopologyInstance{Name: a.Name}
				seen(&in, a)
				ts.Instances = append(ts.Instances, in)
			}
		}
	}
	return t
}

// observe fills a topology instance from what its host reports.
func observe(in *TopologyInstance, a Instance) {
	in.Host, in.Status, in.IP = a.Host, Status(a.State), a.Address
	if a.State != Partial { // a half-made instance has no metadata
		in.FaultDomain, in.UpdateDomain = a.Meta.FaultDomain, a.Meta.UpdateDomain
	}
	if len(a.Ports) > 0 {
		in.Ports = nil
		for g, h := range a.Ports {
			in.Ports = append(in.Ports, Forward{HostPort: h, GuestPort: g})
		}
		slices.SortFunc(in.Ports, func(x, y Forward) int { return x.GuestPort - y.GuestPort })
	}
}

// Only is the topology of one set: its instances and the hosts they use.
func (t Topology) Only(set string) Topology {
	out := Topology{Title: t.Title + ": " + set}
	for _, s := range t.Sets {
		if s.Name != set {
			continue
		}
		out.Sets = append(out.Sets, s)
		for _, in := range s.Instances {
			if !slices.Contains(out.Hosts, in.Host) {
				out.Hosts = append(out.Hosts, in.Host)
			}
		}
	}
	return out
}

// imageDigest is the digest an image is pinned to, when the fleet file
// alone tells: a reference by digest, or a local image's manifest.
func imageDigest(img Image) string {
	if img.Remote.Remote != nil && img.Remote.ByDigest() {
		return img.Remote.Identifier()
	}
	if img.Manifest != nil && img.File != "" {
		for _, a := range img.Manifest.Artifacts {
			if a.Name == filepath.Base(img.File) {
				return a.SHA256
			}
		}
	}
	return ""
}

// group is the instances of one set in one fault domain on one host: a box
// inside the host's box.
type group struct {
	set, fd   int
	instances []int // indexes into the set's Instances
}

// hostGroups lays the topology out: the hosts in order (those instances
// name but Hosts lacks come last), each with its groups in set and fault
// domain order.
func (t Topology) hostGroups() ([]string, [][]group) {
	hosts := slices.Clone(t.Hosts)
	for _, s := range t.Sets {
		for _, in := range s.Instances {
			if !slices.Contains(hosts, in.Host) {
				hosts = append(hosts, in.Host)
			}
		}
	}
	groups := make([][]group, len(hosts))
	for hi, h := range hosts {
		for si, s := range t.Sets {
			var fds []int
			for _, in := range s.Instances {
				if in.Host == h && !slices.Contains(fds, in.FaultDomain) {
					fds = append(fds, in.FaultDomain)
				}
			}
			slices.Sort(fds)
			for _, fd := range fds {
				g := group{set: si, fd: fd}
				for ii, in := range s.Instances {
					if in.Host == h && in.FaultDomain == fd {
						g.instances = append(g.instances, ii)
					}
				}
				groups[hi] = append(groups[hi], g)
			}
		}
	}
	return hosts, groups
}

// Lines of the labels, the same in Mermaid and DOT.

func hostLabel(h string) string {
	if h == "" {
		return "no host"
	}
	return h
}

func (s TopologySet) label() []string {
	lines := []string{string(s.Kind) + " " + s.Name, s.Image}
	if s.Digest != "" {
		lines = append(lines, shortDigest(s.Digest))
	}
	return append(lines, fmt.Sprintf("%d fault domains, %d update domains", s.FaultDomains, s.UpdateDomains))
}

func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

func (in TopologyInstance) label() []string {
	lines := []string{in.Name, fmt.Sprintf("update domain %d, %s", in.UpdateDomain, in.Status)}
	if len(in.Ports) > 0 {
		ports := make([]string, len(in.Ports))
		for i, p := range in.Ports {
			ports[i] = "guest " + strconv.Itoa(p.GuestPort)
			if p.HostPort != 0 {
				ports[i] = fmt.Sprintf("guest %d at 127.0.0.1:%d", p.GuestPort, p.HostPort)
			}
		}
		lines = append(lines, strings.Join(ports, ", "))
	}
	if in.IP != "" {
		lines = append(lines, in.IP)
	}
	return lines
}

func groupLabel(s TopologySet, fd int) string {
	return fmt.Sprintf("%s: fault domain %d", s.Name, fd)
}

// Mermaid renders the topology as a Mermaid flowchart. The same topology
// always gives the same bytes. Node ids are positions, never names; every
// name is escaped, so no name can break the chart.
func (t Topology) Mermaid() string {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "%%%% kiln deploy graph: %s\n", oneLine(t.Title))
	}
	b.WriteString("flowchart TB\n")
	hosts, groups := t.hostGroups()
	for hi, h := range hosts {
		fmt.Fprintf(&b, "  subgraph h%d[%s]\n", hi, mermaidText(hostLabel(h)))
		if len(groups[hi]) == 0 {
			fmt.Fprintf(&b, "    h%dnone[%s]\n", hi, mermaidText("no instances"))
		}
		for _, g := range groups[hi] {
			s := t.Sets[g.set]
			fmt.Fprintf(&b, "    subgraph h%ds%df%d[%s]\n", hi, g.set, g.fd, mermaidText(groupLabel(s, g.fd)))
			for _, ii := range g.instances {
				fmt.Fprintf(&b, "      s%di%d[%s]\n", g.set, ii, mermaidText(s.Instances[ii].label()...))
			}
			b.WriteString("    end\n")
		}
		b.WriteString("  end\n")
	}
	for si, s := range t.Sets {
		fmt.Fprintf(&b, "  s%d{{%s}}\n", si, mermaidText(s.label()...))
		if s.LoadBalancer != nil {
			fmt.Fprintf(&b, "  lb%d([%s]) --> s%d\n", si, mermaidText(s.LoadBalancer.label()...), si)
		}
		for ii := range s.Instances {
			fmt.Fprintf(&b, "  s%d --> s%di%d\n", si, si, ii)
		}
	}
	byClass := map[string][]string{}
	for si, s := range t.Sets {
		for ii, in := range s.Instances {
			c := statusClass(in.Status)
			byClass[c] = append(byClass[c], fmt.Sprintf("s%di%d", si, ii))
		}
	}
	for _, st := range statusStyles {
		c := string(st.status)
		if ids := byClass[c]; len(ids) > 0 {
			dash := ""
			if st.status == StatusPlanned {
				dash = ",stroke-dasharray:5 5"
			}
			fmt.Fprintf(&b, "  classDef %s fill:%s%s\n", c, st.fill, dash)
			fmt.Fprintf(&b, "  class %s %s\n", strings.Join(ids, ","), c)
		}
	}
	return b.String()
}

// statusClass is the Mermaid class of a status: its name when known, ""
// for one the graph does not colour.
func statusClass(s Status) string {
	for _, st := range statusStyles {
		if st.status == s {
			return string(s)
		}
	}
	return ""
}

// mermaidText quotes lines for a Mermaid label. Inside quotes Mermaid
// reads #name; and #number; as entities and HTML tags as markup, so every
// character but a few plain ones is written as #number;.
func mermaidText(lines ...string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, l := range lines {
		if i > 0 {
			b.WriteString("<br/>")
		}
		for _, r := range l {
			if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" -_.,:/@+=?()[]!~%*'", r)) {
				b.WriteRune(r)
			} else {
				fmt.Fprintf(&b, "#%d;", r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// oneLine keeps text on one line, for comments.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\u0085' || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// DOT renders the topology as a Graphviz digraph: a cluster per host, one
// per set and fault domain inside it, the sets (and their load balancers)
// pointing at their instances. The same topology always gives the same
// bytes; every string is quoted and escaped.
func (t Topology) DOT() string {
	var b strings.Builder
	b.WriteString("digraph fleet {\n")
	b.WriteString("  graph [rankdir=TB, fontname=\"Helvetica\", labelloc=t")
	if t.Title != "" {
		fmt.Fprintf(&b, ", label=%s", dotString(t.Title))
	}
	b.WriteString("];\n")
	b.WriteString("  node [fontname=\"Helvetica\", shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n")
	b.WriteString("  edge [color=\"#777777\"];\n")
	hosts, groups := t.hostGroups()
	for hi, h := range hosts {
		fmt.Fprintf(&b, "  subgraph \"cluster_h%d\" {\n    label=%s;\n", hi, dotString(hostLabel(h)))
		if len(groups[hi]) == 0 {
			// An empty cluster is not drawn: show the host anyway.
			fmt.Fprintf(&b, "    \"h%d\" [label=\"no instances\", shape=plaintext, style=\"\"];\n", hi)
		}
		for _, g := range groups[hi] {
			s := t.Sets[g.set]
			fmt.Fprintf(&b, "    subgraph \"cluster_h%ds%df%d\" {\n      label=%s;\n", hi, g.set, g.fd, dotString(groupLabel(s, g.fd)))
			for _, ii := range g.instances {
				in := s.Instances[ii]
				fmt.Fprintf(&b, "      \"s%di%d\" [label=%s%s];\n", g.set, ii, dotString(strings.Join(in.label(), "\n")), dotStyle(in.Status))
			}
			b.WriteString("    }\n")
		}
		b.WriteString("  }\n")
	}
	for si, s := range t.Sets {
		fmt.Fprintf(&b, "  \"s%d\" [label=%s, shape=hexagon, style=filled, fillcolor=\"#eeeeee\"];\n", si, dotString(strings.Join(s.label(), "\n")))
		if s.LoadBalancer != nil {
			fmt.Fprintf(&b, "  \"lb%d\" [label=%s, shape=ellipse, style=filled, fillcolor=\"#eeeeee\"];\n  \"lb%d\" -> \"s%d\";\n",
				si, dotString(strings.Join(s.LoadBalancer.label(), "\n")), si, si)
		}
		for ii := range s.Instances {
			fmt.Fprintf(&b, "  \"s%d\" -> \"s%di%d\";\n", si, si, ii)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func dotStyle(s Status) string {
	for _, st := range statusStyles {
		if st.status == s {
			if s == StatusPlanned {
				return fmt.Sprintf(", style=\"rounded,dashed,filled\", fillcolor=%q", st.fill)
			}
			return fmt.Sprintf(", fillcolor=%q", st.fill)
		}
	}
	return ""
}

// dotString quotes s as a DOT label. In a label a backslash starts an
// escape (\n, \l, \N), so it is doubled, and & starts an HTML entity, so
// it is written &amp;; a line break becomes \n, other control characters
// a space.
func dotString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '&':
			b.WriteString("&amp;")
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ErrNoDot is SVG's error when Graphviz is not installed.
var ErrNoDot = errors.New("deploy: Graphviz's dot is not in PATH; install graphviz (apt-get install graphviz), or draw the topology as DOT or Mermaid text")

// SVG renders the topology as SVG with Graphviz (dot -Tsvg), which must be
// installed; it stops with ctx.
func (t Topology) SVG(ctx context.Context) ([]byte, error) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		return nil, ErrNoDot
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(t.DOT())
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("deploy: dot -Tsvg: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}
