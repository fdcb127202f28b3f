package deploy

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-project/kiln/deploy/repair"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
)

// APIVersion is the only fleet format version this kiln reads; it is the
// recipes' version, as both are kiln's own files.
const APIVersion = recipes.APIVersion

// MaxFleetSize bounds a fleet file: a fleet is a handful of short
// documents, anything bigger is a file passed by mistake.
const MaxFleetSize = 1 << 20

// Kind is the kind of a set.
type Kind string

// The kinds of set.
const (
	// ScaleSet is N identical instances, scaled by hand or by load.
	ScaleSet Kind = "ScaleSet"
	// AvailabilitySet is instances spread over at most three fault
	// domains, upgraded one update domain at a time.
	AvailabilitySet Kind = "AvailabilitySet"
)

// Limits and defaults of a set.
const (
	MaxCapacity          = 100
	MaxUpdateDomains     = 20
	DefaultUpdateDomains = 5
	DefaultHost          = "qemu:///system"
	DefaultVCPUs         = 1
	DefaultMemory        = 512 << 20
	MaxVCPUs             = 64
	MinMemory            = 128 << 20
)

// MaxFaultDomains is how many fault domains a set of the kind may have.
func MaxFaultDomains(k Kind) int {
	if k == AvailabilitySet {
		return 3
	}
	return 5
}

// NetworkMode is how instances are connected.
type NetworkMode string

const (
	// UserNetwork is QEMU user networking: guest ports are forwarded to
	// host ports on 127.0.0.1, and nothing on the host changes.
	UserNetwork NetworkMode = "user"
	// LibvirtNetwork attaches instances to a libvirt network by name; they
	// are reached at their own addresses.
	LibvirtNetwork NetworkMode = "network"
)

// Fleet is a fleet file: the sets it declares, in file order.
type Fleet struct {
	File string // as given to LoadFleet
	Sets []*Set
}

// Set returns the set with the given name, or nil.
func (f *Fleet) Set(name string) *Set {
	for _, s := range f.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Set is one set of a fleet, defaulted and checked. What only the image's
// manifest can tell (Firmware, Size.Disk) stays empty for a registry image
// until UseManifest is called with the manifest of the pulled image.
type Set struct {
	Kind  Kind
	Name  string // a DNS label; instances are Name-0, Name-1, ...
	Image Image
	// Recipe is the recipe whose boot section makes each instance's seed,
	// compiled; RecipeFile is its absolute path.
	Recipe     *recipes.Plan
	RecipeFile string
	Capacity   int
	Size       Size
	Firmware   string // bios or uefi; "" until the image's manifest is known
	Network    Network
	// FaultDomains is the number of fault domains: with several hosts, one
	// per host (Hosts[fd] holds fault domain fd).
	FaultDomains  int
	UpdateDomains int
	Hosts         []string // libvirt URIs

	// What `kiln deploy run` does with the set: probe, balance, scale.
	Health       Health
	LoadBalancer BalancerConfig
	Autoscale    Autoscale
	Upgrade      upgrade.Policy
	Repairs      repair.Policy

	pos recipes.Positions // where each field was written, for errors found later
}

// Image is what a set's instances boot from.
type Image struct {
	Ref string // as written in the fleet file
	// File is the absolute path of a local image; "" for a registry or an
	// OCI layout image, which Remote names (a layout's directory made
	// absolute).
	File   string
	Remote registry.Ref
	// Manifest is the image's manifest: read beside a local image when the
	// fleet is loaded, set by UseManifest once a registry image is pulled.
	Manifest *manifest.Manifest
}

// IsFile reports whether the image is a local file.
func (i Image) IsFile() bool { return i.File != "" }

// Size is the virtual hardware of each instance.
type Size struct {
	VCPUs  int
	Memory recipes.Size
	Disk   recipes.Size // at least the image's virtual size; 0 until it is known
}

// Network is how each instance is connected.
type Network struct {
	Mode NetworkMode
	Name string // the libvirt network (LibvirtNetwork)
	// Ports are the guest ports forwarded to the host (UserNetwork): as
	// written, or the ports of the recipe's and its roles' HTTP and TCP
	// checks.
	Ports []int
}

// Position returns where a field of the set was written in the fleet file
// (or its nearest written parent), for errors found after loading:
// s.Position("capacity").
func (s *Set) Position(path string) recipes.Pos { return s.pos.Of(path) }

// setSpec is a set as written: pointers tell unset from zero.
type setSpec struct {
	APIVersion    string            `yaml:"apiVersion" doc:"fleet format version; kiln/v1"`
	Kind          string            `yaml:"kind" doc:"ScaleSet or AvailabilitySet"`
	Name          string            `yaml:"name" doc:"set name, a DNS label of at most 60 characters; instances are NAME-0, NAME-1, ..."`
	Image         string            `yaml:"image" doc:"oci://REGISTRY/REPO:TAG (or @sha256:...), oci:DIR:TAG for an OCI layout directory, or ./image.qcow2 with its .manifest.json beside it; paths are relative to the fleet file"`
	Recipe        string            `yaml:"recipe" doc:"recipe whose boot section makes each instance's seed; relative to the fleet file"`
	Capacity      *int              `yaml:"capacity" doc:"number of instances: ScaleSet 0-100, AvailabilitySet 1-100; default 1"`
	Size          sizeSpec          `yaml:"size" doc:"virtual hardware of each instance"`
	Firmware      string            `yaml:"firmware" doc:"bios or uefi; default the first the image's manifest lists"`
	Network       networkSpec       `yaml:"network" doc:"how instances are connected"`
	FaultDomains  *int              `yaml:"faultDomains" doc:"AvailabilitySet 1-3 (default 3), ScaleSet 1-5 (default 1); with several hosts, one per host"`
	UpdateDomains *int              `yaml:"updateDomains" doc:"1-20, default 5: upgrades and maintenance walk one at a time"`
	Hosts         []string          `yaml:"hosts" doc:"libvirt URIs: qemu:///system (default), qemu:///session, qemu+unix:///system?socket=PATH, qemu+ssh://[USER@]HOST/system, qemu+tcp://HOST/system; with several, a fault domain is a host"`
	Health        healthSpec        `yaml:"health" doc:"how kiln deploy run probes each instance"`
	LoadBalancer  loadBalancerSpec  `yaml:"loadBalancer" doc:"a HAProxy in front of the set's healthy instances: on this host, or in a VM of the proxy role (placement: vm)"`
	Autoscale     autoscaleSpec     `yaml:"autoscale" doc:"capacity from metrics (ScaleSet): minimum, maximum, default, rules"`
	UpgradePolicy upgradePolicySpec `yaml:"upgradePolicy" doc:"how instances move to a new image: mode and rollingUpgradePolicy"`
	Repairs       repairsSpec       `yaml:"automaticRepairs" doc:"what happens to an instance unhealthy past a grace period"`
}

type sizeSpec struct {
	VCPUs  *int          `yaml:"vcpus" doc:"virtual CPUs, 1-64; default 1"`
	Memory *recipes.Size `yaml:"memory" doc:"memory, at least 128MiB; default 512MiB"`
	Disk   *recipes.Size `yaml:"disk" doc:"disk size, at least the image's virtual size (the default)"`
}

type networkSpec struct {
	Mode  string `yaml:"mode" doc:"user (default: QEMU user networking, guest ports forwarded on 127.0.0.1) or network"`
	Name  string `yaml:"name" doc:"mode network: the libvirt network, e.g. default"`
	Ports []int  `yaml:"ports" doc:"mode user: guest ports to forward; default the ports of the recipe's and its roles' HTTP and TCP checks"`
}

// LoadFleet reads a fleet file: one or more YAML documents, each a set.
// It decodes strictly, fills defaults, reads the recipes and the manifests
// of local images, and checks everything, so the error (a recipes.ErrorList,
// printed like recipe errors) holds every problem at once, each placed at
// file:line:col.
func LoadFleet(path string) (*Fleet, error) {
	data, err := readFleetFile(path)
	if err != nil {
		return nil, err
	}
	return loadFleet(path, data)
}

func readFleetFile(path string) ([]byte, error) {
	at := func(format string, args ...any) error {
		return recipes.ErrorList{{Pos: recipes.Pos{File: path}, Msg: fmt.Sprintf(format, args...)}}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, at("cannot read fleet file: %v", errors.Unwrap(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, at("is a directory, not a fleet file")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFleetSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFleetSize {
		return nil, at("fleet file is more than %d bytes; a fleet is a few short documents, one per set", MaxFleetSize)
	}
	return data, nil
}

// loadFleet loads a fleet file's content as if read from path (the fuzz
// test feeds bytes).
func loadFleet(path string, data []byte) (*Fleet, error) {
	var specs []setSpec
	positions, errs := recipes.DecodeStrict(path, data, &specs)
	c := &checker{errs: errs, decodeErrs: errs, dir: filepath.Dir(path), plans: map[string]*recipes.Plan{}}
	fleet := &Fleet{File: path}
	seen := map[string]recipes.Pos{}
	for i := range specs {
		s := c.set(&specs[i], positions[i])
		if s.Name != "" {
			if first, dup := seen[s.Name]; dup {
				c.errorf(s.pos, "name", "set name %q is already used at %s; every set of a fleet needs its own name", s.Name, first)
			} else {
				seen[s.Name] = s.pos.Of("name")
			}
		}
		fleet.Sets = append(fleet.Sets, s)
	}
	if len(specs) == 0 && len(errs) == 0 {
		c.errs = append(c.errs, &recipes.Error{Pos: recipes.Pos{File: path, Line: 1, Col: 1},
			Msg: "fleet file has no sets; write one YAML document per set, each with apiVersion: kiln/v1, kind: ScaleSet or AvailabilitySet, name, image and recipe"})
	}
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	return fleet, nil
}

// checker defaults and checks sets, collecting every problem.
type checker struct {
	errs       recipes.ErrorList
	decodeErrs recipes.ErrorList        // what did not decode, a part of errs
	dir        string                   // relative paths resolve here (as given, for messages)
	plans      map[string]*recipes.Plan // by absolute path; nil for one that failed (reported once)
}

func (c *checker) errorf(pos recipes.Positions, path, format string, args ...any) {
	if c.undecoded(pos, path) {
		return
	}
	c.errs = append(c.errs, &recipes.Error{Pos: pos.Of(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// undecoded reports whether path, or what holds it, did not decode: its
// zero value deserves no second message.
func (c *checker) undecoded(pos recipes.Positions, path string) bool {
	for _, e := range c.decodeErrs {
		within := e.Path == path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[")
		if within && e.Path != "" && e.Pos == pos.Of(e.Path) {
			return true
		}
	}
	return false
}

var (
	// Instance names add "-99": set names stay within 60 characters so
	// every instance name is a DNS label.
	setNameRE     = lazyre.New(`^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$`)
	networkNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
)

func (c *checker) set(sp *setSpec, pos recipes.Positions) *Set {
	s := &Set{Name: sp.Name, pos: pos}
	switch {
	case sp.APIVersion == "":
		c.errorf(pos, "apiVersion", "missing required field apiVersion (add apiVersion: %s)", APIVersion)
	case sp.APIVersion != APIVersion:
		c.errorf(pos, "apiVersion", "unsupported apiVersion %q (this kiln reads %s)", sp.APIVersion, APIVersion)
	}
	s.Kind = c.kind(sp.Kind, pos)
	switch {
	case sp.Name == "":
		c.errorf(pos, "name", "missing required field name (a short DNS label like web or db; instances are named web-0, web-1, ...)")
	case !setNameRE.MatchString(sp.Name):
		c.errorf(pos, "name", "invalid name %q: use lower-case letters, digits and dashes, at most 60 characters (instances add -0, -1, ...)", sp.Name)
	}
	s.Image = c.image(sp.Image, pos, "image")
	s.RecipeFile, s.Recipe = c.recipe(sp.Recipe, pos)
	s.Capacity = c.capacity(s.Kind, sp.Capacity, pos)
	s.Size = c.size(&sp.Size, pos)
	switch sp.Firmware {
	case "", "bios", "uefi":
		s.Firmware = sp.Firmware
	default:
		c.errorf(pos, "firmware", "unknown firmware %q (want bios or uefi)", sp.Firmware)
	}
	s.Hosts = c.hosts(s.Kind, sp.Hosts, pos)
	s.FaultDomains = c.faultDomains(s.Kind, sp.FaultDomains, len(s.Hosts), pos)
	s.UpdateDomains = DefaultUpdateDomains
	if ud := sp.UpdateDomains; ud != nil {
		if *ud < 1 || *ud > MaxUpdateDomains {
			c.errorf(pos, "updateDomains", "updateDomains must be 1-%d (instances are upgraded one update domain at a time), got %d", MaxUpdateDomains, *ud)
		}
		s.UpdateDomains = *ud
	}
	s.Network = c.network(&sp.Network, s.Recipe, pos)
	s.Health = c.health(&sp.Health, s.Recipe, pos)
	s.LoadBalancer = c.loadBalancer(&sp.LoadBalancer, s.Health, pos)
	s.Autoscale = c.autoscale(&sp.Autoscale, s.Kind, s.Capacity, pos)
	s.Upgrade = c.upgradePolicy(&sp.UpgradePolicy, pos)
	s.Repairs = c.repairs(&sp.Repairs, s.Health, pos)
	c.reachable(s, sp.Health.Probe != nil || sp.Health.Interval != nil, pos)
	if s.Recipe != nil && setNameRE.MatchString(s.Name) {
		c.hostnames(s, pos)
	}
	if s.Image.Manifest != nil {
		var el recipes.ErrorList
		if errors.As(s.UseManifest(s.Image.Manifest), &el) {
			c.errs = append(c.errs, el...)
		}
	}
	return s
}

func (c *checker) kind(k string, pos recipes.Positions) Kind {
	switch Kind(k) {
	case ScaleSet, AvailabilitySet:
		return Kind(k)
	}
	switch {
	case k == "":
		c.errorf(pos, "kind", "missing required field kind (kind: ScaleSet or kind: AvailabilitySet)")
	case strings.EqualFold(k, string(ScaleSet)) || strings.EqualFold(k, string(AvailabilitySet)):
		c.errorf(pos, "kind", "unknown kind %q: kinds are case-sensitive (ScaleSet or AvailabilitySet)", k)
	case k == "Recipe":
		c.errorf(pos, "kind", "a recipe is not a set: name it from a set with recipe: ./file.yaml (kind: ScaleSet or AvailabilitySet)")
	default:
		c.errorf(pos, "kind", "unknown kind %q (want ScaleSet or AvailabilitySet)", k)
	}
	return ""
}

// isImageFile tells a local image from a registry reference: a path
// (./, ../, /) or a name with an image file's extension.
func isImageFile(ref string) bool {
	if strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") {
		return true
	}
	switch filepath.Ext(ref) {
	case ".qcow2", ".raw", ".img":
		return !strings.Contains(ref, "://")
	}
	return false
}

// image checks an image reference written at field (image, or
// loadBalancer.image).
func (c *checker) image(ref string, pos recipes.Positions, field string) Image {
	img := Image{Ref: ref}
	if ref == "" {
		c.errorf(pos, field, "missing required field %s (oci://registry.example.com/team/web:1.2, or ./web.qcow2 beside its web.manifest.json)", field)
		return img
	}
	if isImageFile(ref) {
		p := c.path(ref)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			c.errorf(pos, field, "image file %q not found (%v); paths are relative to the fleet file, a registry image is written oci://REGISTRY/REPO:TAG", ref, errors.Unwrap(err))
			return img
		case st.IsDir():
			c.errorf(pos, field, "%q is a directory: name the image file (web.qcow2), or an OCI layout as oci:DIR:TAG", ref)
			return img
		case !st.Mode().IsRegular():
			c.errorf(pos, field, "%q is not a regular file: name the image file (web.qcow2)", ref)
			return img
		}
		mp := manifest.PathFor(p)
		m, err := manifest.Read(mp)
		switch {
		case errors.Is(err, os.ErrNotExist):
			c.errorf(pos, field, "no manifest beside %q (want %s): deploy reads firmware and disk size from the one kiln bake writes", ref, filepath.Base(mp))
		case err != nil:
			c.errorf(pos, field, "%v", err)
		}
		img.File, img.Manifest = absolute(p), m
		return img
	}
	r, err := registry.ParseRef(ref)
	if err != nil {
		var re *registry.RefError
		if errors.As(err, &re) {
			c.errorf(pos, field, "invalid image reference %q: %s (a local image file is written ./web.qcow2)", ref, re.Msg)
		} else {
			c.errorf(pos, field, "%v", err)
		}
		return img
	}
	if r.IsLayout() {
		dir := c.path(r.Layout)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			c.errorf(pos, field, "OCI layout directory of %q not found at %s (paths are relative to the fleet file)", ref, dir)
		}
		r.Layout = absolute(dir)
	}
	img.Remote = r
	return img
}

// path resolves a reference written in the fleet file, for reading and
// for messages: relative when the fleet file's path is.
func (c *checker) path(ref string) string {
	if filepath.IsAbs(ref) {
		return filepath.Clean(ref)
	}
	return filepath.Join(c.dir, ref)
}

// absolute is what a Set keeps of a path: the backend may run elsewhere.
func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// recipe loads and compiles a set's recipe. Its own problems are placed in
// its own file, and reported once however many sets use it.
func (c *checker) recipe(ref string, pos recipes.Positions) (string, *recipes.Plan) {
	if ref == "" {
		c.errorf(pos, "recipe", "missing required field recipe (the recipe whose boot section makes each instance's seed, e.g. recipe: ./web.yaml)")
		return "", nil
	}
	p := c.path(ref)
	abs := absolute(p)
	if plan, done := c.plans[abs]; done {
		return abs, plan
	}
	c.plans[abs] = nil
	// Only regular files: a FIFO or a device would block or never end.
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		c.errorf(pos, "recipe", "recipe file %q not found (paths are relative to the fleet file)", ref)
		return abs, nil
	}
	plan, err := recipes.LoadPlan(p)
	if err != nil {
		var el recipes.ErrorList
		var e *recipes.Error
		switch {
		case errors.As(err, &el):
			c.errs = append(c.errs, el...)
		case errors.As(err, &e):
			c.errs = append(c.errs, e)
		default:
			c.errorf(pos, "recipe", "recipe %q: %v", ref, err)
		}
		return abs, nil
	}
	c.plans[abs] = plan
	return abs, plan
}

func (c *checker) capacity(k Kind, n *int, pos recipes.Positions) int {
	if n == nil {
		return 1
	}
	lowest := 0
	if k == AvailabilitySet {
		lowest = 1
	}
	switch {
	case k == AvailabilitySet && *n == 0:
		c.errorf(pos, "capacity", "an AvailabilitySet has 1-%d instances (a ScaleSet may scale to 0)", MaxCapacity)
	case *n < lowest || *n > MaxCapacity:
		c.errorf(pos, "capacity", "capacity must be %d-%d, got %d", lowest, MaxCapacity, *n)
	}
	return *n
}

func (c *checker) size(sp *sizeSpec, pos recipes.Positions) Size {
	sz := Size{VCPUs: DefaultVCPUs, Memory: DefaultMemory}
	if sp.VCPUs != nil {
		if *sp.VCPUs < 1 || *sp.VCPUs > MaxVCPUs {
			c.errorf(pos, "size.vcpus", "vcpus must be 1-%d, got %d", MaxVCPUs, *sp.VCPUs)
		}
		sz.VCPUs = *sp.VCPUs
	}
	if sp.Memory != nil {
		switch m := *sp.Memory; {
		case m < MinMemory:
			c.errorf(pos, "size.memory", "memory %s is too little for a Linux guest with cloud-init; give at least %s", m, recipes.Size(MinMemory))
		case m%(1<<20) != 0:
			c.errorf(pos, "size.memory", "memory %s is not a whole number of MiB; write it like 512MiB or 2GiB", m)
		}
		sz.Memory = *sp.Memory
	}
	if sp.Disk != nil {
		if *sp.Disk <= 0 {
			c.errorf(pos, "size.disk", "disk must be at least the image's virtual size; leave it out to use that")
		}
		sz.Disk = *sp.Disk
	}
	return sz
}

// faultDomains checks the fault domains written against the kind and the
// hosts, and returns the set's count (see FaultDomainCount).
func (c *checker) faultDomains(k Kind, n *int, hosts int, pos recipes.Positions) int {
	if n == nil {
		return FaultDomainCount(k, 0, hosts)
	}
	switch most := MaxFaultDomains(k); {
	case *n < 1 || *n > most:
		what := "a ScaleSet"
		if k == AvailabilitySet {
			what = "an AvailabilitySet"
		}
		c.errorf(pos, "faultDomains", "%s has 1-%d fault domains, got %d", what, most, *n)
	case hosts > 1 && *n != hosts:
		c.errorf(pos, "faultDomains", "with several hosts a fault domain is a host: %d hosts make %d fault domains; remove faultDomains or list %d hosts", hosts, hosts, *n)
	}
	return FaultDomainCount(k, *n, hosts)
}

// libvirtParams are the extra parameters libvirt's remote URIs take
// (libvirt's URI documentation, "remote URIs").
var libvirtParams = []string{"command", "keyfile", "known_hosts", "known_hosts_verify", "mode", "netcat", "no_tty", "no_verify", "pkipath", "proxy", "socket", "sshauth", "tls_priority"}

const hostForms = "qemu:///system, qemu:///session, qemu+unix:///system?socket=PATH, qemu+ssh://[USER@]HOST/system or qemu+tcp://HOST/system"

func (c *checker) hosts(k Kind, hosts []string, pos recipes.Positions) []string {
	if len(hosts) == 0 {
		return []string{DefaultHost}
	}
	seen := map[string]bool{}
	for i, h := range hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if msg := checkHostURI(h); msg != "" {
			c.errorf(pos, p, "%s", msg)
		} else if seen[h] {
			c.errorf(pos, p, "host %q is listed twice; each host is one fault domain", h)
		}
		seen[h] = true
	}
	if most := MaxFaultDomains(k); len(hosts) > most {
		what := "a ScaleSet"
		if k == AvailabilitySet {
			what = "an AvailabilitySet"
		}
		c.errorf(pos, "hosts", "%s spreads over at most %d fault domains, one per host; list at most %d hosts", what, most, most)
	}
	return hosts
}

// checkHostURI returns what is wrong with a libvirt URI, or "".
func checkHostURI(h string) string {
	u, err := url.Parse(h)
	if err != nil || h == "" {
		return fmt.Sprintf("invalid libvirt URI %q: write %s", h, hostForms)
	}
	bad := func(why string) string { return fmt.Sprintf("libvirt URI %q %s; write %s", h, why, hostForms) }
	switch u.Scheme {
	case "qemu", "qemu+unix":
		if u.Host != "" || u.User != nil {
			return bad("names a host: a remote host is reached with qemu+ssh:// or qemu+tcp://")
		}
	case "qemu+ssh", "qemu+tcp":
		if u.Hostname() == "" {
			return bad("names no host")
		}
	default:
		return bad("is not a QEMU driver URI kiln supports")
	}
	if u.Path != "/system" && u.Path != "/session" {
		return bad("must end in /system or /session")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return bad("has parts libvirt does not read")
	}
	q := u.Query()
	for _, k := range sortedKeys(q) {
		switch {
		case u.Scheme == "qemu":
			return bad("takes no parameters (a socket is given with qemu+unix:///system?socket=PATH)")
		case !slices.Contains(libvirtParams, k):
			return fmt.Sprintf("libvirt URI %q has an unknown parameter %q (libvirt knows %s)", h, k, strings.Join(libvirtParams, ", "))
		case k == "socket" && !filepath.IsAbs(q.Get(k)):
			return fmt.Sprintf("libvirt URI %q: socket must be an absolute path", h)
		}
	}
	return ""
}

func sortedKeys(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *checker) network(sp *networkSpec, plan *recipes.Plan, pos recipes.Positions) Network {
	n := Network{Mode: NetworkMode(sp.Mode), Name: sp.Name}
	switch n.Mode {
	case "":
		n.Mode = UserNetwork
	case UserNetwork, LibvirtNetwork:
	default:
		c.errorf(pos, "network.mode", "unknown network mode %q (want user, or network with a libvirt network's name)", sp.Mode)
	}
	switch {
	case n.Mode == LibvirtNetwork && sp.Name == "":
		c.errorf(pos, "network", "mode network needs the libvirt network's name (name: default)")
	case n.Mode == LibvirtNetwork && !networkNameRE.MatchString(sp.Name):
		c.errorf(pos, "network.name", "invalid libvirt network name %q", sp.Name)
	case n.Mode == UserNetwork && sp.Name != "":
		c.errorf(pos, "network.name", "name is for mode network; remove it, or set mode: network")
	}
	if sp.Ports != nil && n.Mode == LibvirtNetwork {
		c.errorf(pos, "network.ports", "ports are forwarded only in mode user; in mode network each instance is reached at its own address")
	}
	seen := map[int]bool{}
	for i, p := range sp.Ports {
		switch {
		case p < 1 || p > 65535:
			c.errorf(pos, fmt.Sprintf("network.ports[%d]", i), "port must be 1-65535, got %d", p)
		case seen[p]:
			c.errorf(pos, fmt.Sprintf("network.ports[%d]", i), "port %d is listed twice", p)
		}
		seen[p] = true
	}
	n.Ports = sp.Ports
	if sp.Ports == nil && n.Mode == UserNetwork && plan != nil {
		n.Ports = CheckPorts(plan.Checks)
	}
	return n
}

// CheckPorts are the guest ports HTTP and TCP checks probe, sorted: what
// user networking must forward for health probes to reach them.
func CheckPorts(checks []recipes.Check) []int {
	var ports []int
	for _, ch := range checks {
		switch {
		case ch.HTTP != nil:
			ports = append(ports, ch.HTTP.Port)
		case ch.TCP != nil:
			ports = append(ports, ch.TCP.Port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// hostnames checks that the recipe's hostname pattern gives every instance
// its own valid host name, up to the largest set.
func (c *checker) hostnames(s *Set, pos recipes.Positions) {
	pattern := s.Recipe.Boot.Hostname
	names := map[string]bool{}
	for _, i := range []int{0, 1, MaxCapacity - 1} {
		h, err := recipes.ExpandHostname(pattern, s.Recipe.Recipe.Name, InstanceName(s.Name, i), i)
		if err != nil {
			c.errorf(pos, "recipe", "the recipe's boot.hostname does not fit set %s: %v", s.Name, err)
			return
		}
		names[h] = true
	}
	if len(names) < 3 {
		c.errorf(pos, "recipe", "the recipe's boot.hostname %q gives instances of set %s the same host name; put {instance} or {index} in it", pattern, s.Name)
	}
}

// UseManifest takes from the image's manifest what the fleet file left
// to it (firmware, disk size), and checks that the set fits the image: the
// firmware is one the image boots under, the disk no smaller than the
// image. Problems are a recipes.ErrorList placed in the fleet file.
// LoadFleet calls it for local images; for a registry image, call it once
// the image is pulled.
func (s *Set) UseManifest(m *manifest.Manifest) error {
	var errs recipes.ErrorList
	errorf := func(path, format string, args ...any) {
		errs = append(errs, &recipes.Error{Pos: s.pos.Of(path), Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	s.Image.Manifest = m
	fw := m.Disk.Firmware
	switch {
	case s.Firmware == "" && len(fw) > 0:
		s.Firmware = fw[0]
	case s.Firmware == "":
		s.Firmware = "bios"
	case len(fw) > 0 && !slices.Contains(fw, s.Firmware):
		errorf("firmware", "the image boots only under %s (its manifest lists firmware %v); set firmware: %s or leave it out", strings.Join(fw, ", "), fw, fw[0])
	}
	image := recipes.Size(m.Disk.VirtualSize)
	switch {
	case s.Size.Disk == 0:
		s.Size.Disk = image
	case s.Size.Disk < image:
		errorf("size.disk", "disk %s is smaller than the image (%s); make it at least %s or leave it out", s.Size.Disk, image, image)
	}
	return errs.Err()
}
