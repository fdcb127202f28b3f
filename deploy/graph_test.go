package deploy

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// exampleTopology is the planned topology of examples/fleet.yaml: an
// availability set of 3 on one host, a scale set of 4 over two hosts.
func exampleFleet(t *testing.T) *Fleet {
	t.Helper()
	f, err := LoadFleet("../examples/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func exampleTopology(t *testing.T) Topology { return PlannedTopology(exampleFleet(t)) }

// golden compares got with testdata/name, or rewrites it under -update
// (go test ./deploy -run Golden -args -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendering (review, then -update):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

func TestPlannedTopology(t *testing.T) {
	top := exampleTopology(t)
	if top.Title != "fleet.yaml" || strings.Join(top.Hosts, " ") != "qemu:///system qemu+ssh://kiln@host2.example.com/system" || len(top.Sets) != 2 {
		t.Fatalf("topology: %+v", top)
	}
	edge, web := top.Sets[0], top.Sets[1]
	if edge.Kind != AvailabilitySet || edge.FaultDomains != 3 || edge.UpdateDomains != 3 || len(edge.Instances) != 3 {
		t.Errorf("edge: %+v", edge)
	}
	for i, in := range edge.Instances {
		if in.Host != "qemu:///system" || in.FaultDomain != i || in.Status != StatusPlanned || len(in.Ports) == 0 {
			t.Errorf("edge instance %d: %+v", i, in)
		}
	}
	if web.Kind != ScaleSet || web.FaultDomains != 2 || len(web.Instances) != 4 {
		t.Errorf("web: %+v", web)
	}
	for i, in := range web.Instances {
		if in.Host != top.Hosts[i%2] || in.FaultDomain != i%2 || in.UpdateDomain != i%2 || len(in.Ports) != 1 || in.Ports[0] != (Forward{GuestPort: 8080}) {
			t.Errorf("web instance %d: %+v", i, in)
		}
	}
}

func TestGolden(t *testing.T) {
	top := exampleTopology(t)
	golden(t, "fleet.mmd.golden", top.Mermaid())
	golden(t, "fleet.dot.golden", top.DOT())
	// Same input, same bytes.
	again := exampleTopology(t)
	if again.Mermaid() != top.Mermaid() || again.DOT() != top.DOT() {
		t.Error("two renderings of one fleet differ")
	}
}

// hostile is a topology a backend could report, with every character that
// means something to Mermaid, DOT or HTML in its names.
func hostile() Topology {
	return Topology{
		Title: "a \"fleet\"\n%% injected",
		Hosts: []string{`qemu+ssh://h/system?socket=/a "b"\c`, "qemu:///system"},
		Sets: []TopologySet{{
			Name: `we"b]<br/>#quot;&amp;end`, Kind: ScaleSet, Image: `oci://r.example.com/x:1"]; evil -> x`,
			Digest: "sha256:" + strings.Repeat("0123456789", 7), FaultDomains: 2, UpdateDomains: 1,
			LoadBalancer: &LoadBalancer{Address: "127.0.0.1:8080"},
			Instances: []TopologyInstance{
				{Name: "w\\N-0 } subgraph", Host: `qemu+ssh://h/system?socket=/a "b"\c`, Status: StatusHealthy, Ports: []Forward{{HostPort: 40001, GuestPort: 80}}},
				{Name: "w-1 ü", FaultDomain: 1, Host: "elsewhere", Status: "rebooting", IP: "198.51.100.7"},
				{Name: "w-2", Host: "", Status: StatusCrashed},
			},
		}},
	}
}

func TestMermaidEscapes(t *testing.T) {
	m := hostile().Mermaid()
	for _, bad := range []string{"\n%% injected", `we"b`, "<br/>#quot;", "&amp;", `x:1"]`, "} subgraph", "ü", `"b"`} {
		if strings.Contains(m, bad) {
			t.Errorf("Mermaid output holds %q unescaped:\n%s", bad, m)
		}
	}
	for _, want := range []string{
		`s0i0["w#92;N-0 #125; subgraph<br/>update domain 0, healthy<br/>guest 80 at 127.0.0.1:40001"]`,
		`s0i1["w-1 #252;<br/>update domain 0, rebooting<br/>198.51.100.7"]`,
		`lb0(["load balancer<br/>127.0.0.1:8080"]) --> s0`,
		`subgraph h2["elsewhere"]`, `subgraph h3["no host"]`, `h1none["no instances"]`,
		"sha256:012345678901<br/>",
		"class s0i0 healthy", "class s0i2 crashed",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("Mermaid output lacks %s:\n%s", want, m)
		}
	}
	// Every line is a statement of its own: no label spans lines.
	for _, l := range strings.Split(strings.TrimSuffix(m, "\n"), "\n") {
		if strings.Count(l, `"`)%2 != 0 {
			t.Errorf("unbalanced quotes in %q", l)
		}
	}
}

func TestDOTEscapes(t *testing.T) {
	d := hostile().DOT()
	for _, want := range []string{
		`label="a \"fleet\"\n%% injected"];`,
		`label="we\"b]<br/>#quot;&amp;amp;end: fault domain 0";`,
		`label="qemu+ssh://h/system?socket=/a \"b\"\\c";`,
		`"s0i0" [label="w\\N-0 } subgraph\nupdate domain 0, healthy\nguest 80 at 127.0.0.1:40001", fillcolor="#c7f0c2"];`,
		`"s0i1" [label="w-1 ü\nupdate domain 0, rebooting\n198.51.100.7"];`,
		`"lb0" -> "s0";`,
	} {
		if !strings.Contains(d, want) {
			t.Errorf("DOT output lacks %s:\n%s", want, d)
		}
	}
}

func TestEmptyTopology(t *testing.T) {
	top := Topology{Hosts: []string{"qemu:///system"}, Sets: []TopologySet{{Name: "idle", Kind: ScaleSet, FaultDomains: 1, UpdateDomains: 5}}}
	if m := top.Mermaid(); !strings.Contains(m, `s0{{"ScaleSet idle<br/><br/>1 fault domains, 5 update domains"}}`) {
		t.Errorf("a set of 0 is still drawn:\n%s", m)
	}
	if d := top.DOT(); !strings.Contains(d, `"h0" [label="no instances"`) {
		t.Errorf("an empty host is still drawn:\n%s", d)
	}
}

func TestSVGWithoutDot(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := exampleTopology(t).SVG(context.Background())
	if !errors.Is(err, ErrNoDot) {
		t.Errorf("want ErrNoDot, got %v", err)
	}
}

// TestSVG: Graphviz accepts the DOT of the example and of hostile names,
// and the SVG it draws is XML naming every set and instance.
func TestSVG(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedTool(t, "dot")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, top := range map[string]Topology{"example": exampleTopology(t), "hostile": hostile()} {
		t.Run(name, func(t *testing.T) {
			svg, err := top.SVG(ctx)
			if err != nil {
				t.Fatal(err)
			}
			text := xmlText(t, svg)
			for _, s := range top.Sets {
				if !strings.Contains(text, string(s.Kind)+" "+s.Name) {
					t.Errorf("SVG lacks set %s", s.Name)
				}
				for _, in := range s.Instances {
					if !strings.Contains(text, in.Name) {
						t.Errorf("SVG lacks instance %s", in.Name)
					}
				}
			}
		})
	}
}

// xmlText parses an SVG document strictly and returns its character data.
func xmlText(t *testing.T, doc []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return text.String()
}

func TestSVGCancelled(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedTool(t, "dot")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := exampleTopology(t).SVG(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("want context.Canceled, got %v", err)
	}
}

// What the hosts hold, drawn: states, forwards and addresses; an instance
// beyond the plan is drawn too; Only keeps one set and its hosts.
func TestObservedTopology(t *testing.T) {
	f := exampleFleet(t)
	web := f.Set("web")
	actual := []Instance{
		{Name: "web-0", Host: web.Hosts[0], State: Running, Meta: Metadata{Set: "web", Ordinal: 0, Image: "sha256:" + strings.Repeat("cd", 32)}, Ports: map[int]int{8080: 40001}},
		{Name: "web-1", Host: web.Hosts[1], State: Stopped, Meta: Metadata{Set: "web", Ordinal: 1, FaultDomain: 1, UpdateDomain: 1}},
		{Name: "web-7", Host: web.Hosts[1], State: Running, Meta: Metadata{Set: "web", Ordinal: 7, FaultDomain: 1, UpdateDomain: 2}},
		{Name: "api-0", Host: web.Hosts[0], State: Running, Meta: Metadata{Set: "api"}}, // another fleet's
	}
	top := ObservedTopology(f, actual).Only("web")
	if len(top.Sets) != 1 || top.Sets[0].Name != "web" || len(top.Sets[0].Instances) != 5 {
		t.Fatalf("topology: %+v", top)
	}
	ins := top.Sets[0].Instances
	if ins[0].Status != StatusRunning || len(ins[0].Ports) != 1 || ins[0].Ports[0] != (Forward{HostPort: 40001, GuestPort: 8080}) {
		t.Errorf("web-0: %+v", ins[0])
	}
	if ins[1].Status != StatusStopped || ins[2].Status != StatusPlanned || ins[4].Name != "web-7" || ins[4].UpdateDomain != 2 {
		t.Errorf("instances: %+v", ins)
	}
	if top.Sets[0].Digest == "" {
		t.Error("the digest the instances run is not drawn")
	}
	dot := top.DOT()
	for _, want := range []string{"127.0.0.1:40001", "stopped", "web-7"} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %q:\n%s", want, dot)
		}
	}
	if strings.Contains(dot, "api-0") || strings.Contains(dot, "edge-") {
		t.Errorf("DOT draws other sets:\n%s", dot)
	}
}

// A balancer in a VM is drawn as the VM it is.
func TestBalancerVMDrawn(t *testing.T) {
	top := hostile()
	top.Sets[0].LoadBalancer.VM = "web-lb"
	if m := top.Mermaid(); !strings.Contains(m, `lb0(["load balancer<br/>web-lb (VM)<br/>127.0.0.1:8080"]) --> s0`) {
		t.Errorf("Mermaid output:\n%s", m)
	}
	if d := top.DOT(); !strings.Contains(d, `label="load balancer\nweb-lb (VM)\n127.0.0.1:8080"`) {
		t.Errorf("DOT output:\n%s", d)
	}
}
