package deploy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/repair"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/internal/fielderr"
	"github.com/kiln-project/kiln/recipes"
)

// The operations part of a set: how its instances are probed, balanced and
// scaled (issue 15). All of it is optional; a set without it is only placed.

// Health is how a set's instances are probed.
type Health struct {
	Probe  health.Probe
	Config health.Config
	// From says where the probe came from: "health.probe" or the recipe
	// check it was taken from ("roles[0].app-host"); "" without a probe.
	From string
}

// Enabled reports whether the set has a probe.
func (h Health) Enabled() bool { return h.Probe.HTTP != nil || h.Probe.TCP != nil }

// Port is the guest port the probe asks.
func (h Health) Port() int {
	switch {
	case h.Probe.HTTP != nil:
		return h.Probe.HTTP.Port
	case h.Probe.TCP != nil:
		return h.Probe.TCP.Port
	}
	return 0
}

// Balance is how the load balancer picks an instance.
type Balance string

const (
	RoundRobin Balance = "roundrobin"
	LeastConn  Balance = "leastconn"
)

// BalancerConfig is a set's load balancer: a HAProxy, on the controller's
// host or in a VM of the proxy role, reached at Listen, sending to Port of
// the set's healthy instances.
type BalancerConfig struct {
	Listen  string // host:port; "" is no load balancer
	Port    int    // the guest port balanced
	Balance Balance
	// Placement is where HAProxy runs: PlaceHost or PlaceVM. A VM is made
	// from Image, a kiln image of the proxy role, with MemoryMiB.
	Placement BalancerPlacement
	Image     Image
	MemoryMiB int
}

// BalancerPlacement is where a set's load balancer runs.
type BalancerPlacement string

const (
	// PlaceHost runs HAProxy as a process on the controller's host.
	PlaceHost BalancerPlacement = "host"
	// PlaceVM runs it in a VM of kiln's proxy role beside the set.
	PlaceVM BalancerPlacement = "vm"
)

// DefaultBalancerMemory is a balancer VM's memory: HAProxy needs little.
const DefaultBalancerMemory = 384 << 20

// Enabled reports whether the set has a load balancer.
func (l BalancerConfig) Enabled() bool { return l.Listen != "" }

// Autoscale is a set's autoscale profile, its metrics and how often it is
// evaluated. Profile.Maximum 0 is no autoscale.
type Autoscale struct {
	Profile  autoscale.Profile
	Interval time.Duration
	// Metrics are the user metrics by name: a number an instance serves
	// over HTTP.
	Metrics map[string]health.HTTPProbe
}

// Enabled reports whether the set scales by itself.
func (a Autoscale) Enabled() bool { return a.Profile.Maximum > 0 }

// DefaultAutoscaleInterval is how often a profile is evaluated, as cloud
// autoscale does (its time grain is a minute).
const DefaultAutoscaleInterval = time.Minute

type healthSpec struct {
	Probe       *probeSpec        `yaml:"probe" doc:"http: {port, path, status, contains} or tcp: {port}; default the first HTTP check of the recipe and its roles, else the first TCP check"`
	Interval    *recipes.Duration `yaml:"interval" doc:"between two probes of an instance, 1s-1m; default 5s"`
	Probes      *int              `yaml:"probes" doc:"equal answers in a row that change an instance's state, 1-24; default 2"`
	GracePeriod *recipes.Duration `yaml:"gracePeriod" doc:"after boot, failures keep an instance starting; default interval x probes"`
}

type probeSpec struct {
	HTTP *recipes.HTTPCheck `yaml:"http" doc:"HTTP GET of a guest port"`
	TCP  *recipes.TCPCheck  `yaml:"tcp" doc:"TCP connect to a guest port"`
}

type loadBalancerSpec struct {
	Listen    string        `yaml:"listen" doc:"where the balancer is reached on this host, IP:PORT (127.0.0.1:8080)"`
	Port      *int          `yaml:"port" doc:"guest port it sends to; default the health probe's port"`
	Balance   string        `yaml:"balance" doc:"roundrobin (default) or leastconn"`
	Placement string        `yaml:"placement" doc:"host (default: an HAProxy process on the controller's host) or vm (a VM of kiln's proxy role, <set>-lb, on the set's first host, its listen forwarded from this address)"`
	Image     string        `yaml:"image" doc:"placement vm: a kiln image of the proxy role, written as a set's image is"`
	Memory    *recipes.Size `yaml:"memory" doc:"placement vm: the VM's memory, at least 128MiB; default 384MiB"`
}

type autoscaleSpec struct {
	Minimum  *int                         `yaml:"minimum" doc:"fewest instances autoscale keeps"`
	Maximum  *int                         `yaml:"maximum" doc:"most instances autoscale makes"`
	Default  *int                         `yaml:"default" doc:"capacity when metrics are lost; default minimum"`
	Interval *recipes.Duration            `yaml:"interval" doc:"how often the rules are evaluated; default 1m"`
	Metrics  map[string]recipes.HTTPCheck `yaml:"metrics" doc:"user metrics by name: an HTTP endpoint of each instance whose body is a number"`
	Rules    []ruleSpec                   `yaml:"rules" doc:"scale out when any out rule fires, in only when every in rule fires"`
}

type ruleSpec struct {
	Metric     string           `yaml:"metric" doc:"cpu (percent of the instance's vCPUs, from libvirt) or a user metric's name"`
	Statistic  string           `yaml:"statistic" doc:"average (default), max or min over the instances"`
	TimeWindow recipes.Duration `yaml:"timeWindow" doc:"the window averaged, at least the interval"`
	Operator   string           `yaml:"operator" doc:"'>', '>=', '<' or '<='"`
	Threshold  float64          `yaml:"threshold" doc:"the value compared"`
	Direction  string           `yaml:"direction" doc:"out or in"`
	Action     actionSpec       `yaml:"action" doc:"how the capacity changes"`
	Cooldown   recipes.Duration `yaml:"cooldown" doc:"no scale action by this rule this long after the last one; default 5m"`
}

type actionSpec struct {
	Type  string `yaml:"type" doc:"changeCount (default), percentChange or exactCount"`
	Value *int   `yaml:"value" doc:"instances, percent or the exact count; default 1"`
}

// DefaultCooldown is a rule's cooldown when none is written (Azure's
// default).
const DefaultCooldown = 5 * time.Minute

// fieldErrors places the FieldErrors of a health or autoscale validation
// under prefix ("health." or "autoscale.").
func (c *checker) fieldErrors(pos recipes.Positions, prefix string, err error) {
	if err == nil {
		return
	}
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var fe *fielderr.Error
		if errors.As(e, &fe) {
			c.errorf(pos, join(prefix, fe.Field), "%s", fe.Message)
		} else {
			c.errorf(pos, prefix, "%v", e)
		}
	}
}

func join(prefix, field string) string {
	switch {
	case field == "":
		return prefix
	case prefix == "":
		return field
	}
	return prefix + "." + field
}

func (c *checker) health(sp *healthSpec, plan *recipes.Plan, pos recipes.Positions) Health {
	var h Health
	switch {
	case sp.Probe != nil:
		h.From = "health.probe"
		if sp.Probe.HTTP != nil {
			x := *sp.Probe.HTTP
			h.Probe.HTTP = &health.HTTPProbe{Port: x.Port, Path: x.Path, Status: x.Status, Contains: x.Contains}
		}
		if sp.Probe.TCP != nil {
			h.Probe.TCP = &health.TCPProbe{Port: sp.Probe.TCP.Port}
		}
		health.DefaultProbe(&h.Probe)
		c.fieldErrors(pos, "health.probe", health.ValidateProbe(h.Probe))
	case plan != nil:
		h.Probe, h.From = probeFromChecks(plan.Checks)
	}
	if sp.Interval != nil {
		h.Config.Interval = sp.Interval.D()
	}
	if sp.Probes != nil {
		if *sp.Probes < 1 {
			c.errorf(pos, "health.probes", "probes must be 1-%d, got %d", health.MaxProbes, *sp.Probes)
		} else {
			h.Config.Probes = *sp.Probes
		}
	}
	if sp.GracePeriod != nil {
		h.Config.GracePeriod = sp.GracePeriod.D()
	}
	health.Default(&h.Config)
	c.fieldErrors(pos, "health", health.Validate(h.Config))
	return h
}

// probeFromChecks is the probe a set gets from its recipe: the first HTTP
// check (a health endpoint says most), else the first TCP check.
func probeFromChecks(checks []recipes.Check) (health.Probe, string) {
	for _, ch := range checks {
		if x := ch.HTTP; x != nil {
			p := health.Probe{HTTP: &health.HTTPProbe{Port: x.Port, Path: x.Path, Status: x.Status, Contains: x.Contains}}
			health.DefaultProbe(&p)
			return p, ch.Origin
		}
	}
	for _, ch := range checks {
		if ch.TCP != nil {
			return health.Probe{TCP: &health.TCPProbe{Port: ch.TCP.Port}}, ch.Origin
		}
	}
	return health.Probe{}, ""
}

func (c *checker) loadBalancer(sp *loadBalancerSpec, h Health, pos recipes.Positions) BalancerConfig {
	lb := BalancerConfig{Listen: sp.Listen, Balance: Balance(sp.Balance), Placement: BalancerPlacement(sp.Placement)}
	if sp.Listen == "" {
		if sp.Port != nil || sp.Balance != "" || sp.Placement != "" || sp.Image != "" || sp.Memory != nil {
			c.errorf(pos, "loadBalancer", "a load balancer needs listen: HOST:PORT (127.0.0.1:8080)")
		}
		return BalancerConfig{}
	}
	host, port, err := net.SplitHostPort(sp.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || net.ParseIP(host) == nil {
		c.errorf(pos, "loadBalancer.listen", "listen must be IP:PORT, like 127.0.0.1:8080, got %q", sp.Listen)
	}
	switch lb.Balance {
	case "":
		lb.Balance = RoundRobin
	case RoundRobin, LeastConn:
	default:
		c.errorf(pos, "loadBalancer.balance", "unknown balance %q (want roundrobin or leastconn)", sp.Balance)
	}
	switch {
	case sp.Port != nil:
		lb.Port = *sp.Port
		if lb.Port < 1 || lb.Port > 65535 {
			c.errorf(pos, "loadBalancer.port", "port must be 1-65535, got %d", lb.Port)
		}
	case h.Enabled():
		lb.Port = h.Port()
	default:
		c.errorf(pos, "loadBalancer", "the load balancer needs port: (the guest port to send to), or a health probe whose port it takes")
	}
	if !h.Enabled() {
		c.errorf(pos, "loadBalancer", "a load balancer sends only to healthy instances: give the set a health probe (health.probe), or a recipe with an HTTP or TCP check")
	}
	switch lb.Placement {
	case "", PlaceHost:
		lb.Placement = PlaceHost
		if sp.Image != "" || sp.Memory != nil {
			c.errorf(pos, "loadBalancer.placement", "image and memory are for placement: vm (a VM of kiln's proxy role); add it, or leave them out for the host's HAProxy")
		}
	case PlaceVM:
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			c.errorf(pos, "loadBalancer.listen", "placement vm forwards listen with QEMU user networking, which takes IPv4 only: use 127.0.0.1:PORT or 0.0.0.0:PORT")
		}
		lb.Image = c.image(sp.Image, pos, "loadBalancer.image")
		if m := lb.Image.Manifest; m != nil && !slices.Contains(m.Recipe.Roles, "proxy") {
			c.errorf(pos, "loadBalancer.image", "%s was baked from recipe %q with roles %v, not the proxy role: bake one from a recipe with roles: [proxy] (examples/proxy.yaml)", sp.Image, m.Recipe.Name, m.Recipe.Roles)
		}
		lb.MemoryMiB = DefaultBalancerMemory >> 20
		if sp.Memory != nil {
			if *sp.Memory < 128<<20 {
				c.errorf(pos, "loadBalancer.memory", "memory %s is too small for a VM; give it at least 128MiB", *sp.Memory)
			}
			lb.MemoryMiB = int(int64(*sp.Memory) >> 20)
		}
	default:
		c.errorf(pos, "loadBalancer.placement", "unknown placement %q (want host or vm)", sp.Placement)
	}
	return lb
}

func (c *checker) autoscale(sp *autoscaleSpec, k Kind, capacity int, pos recipes.Positions) Autoscale {
	var a Autoscale
	if sp.Maximum == nil && sp.Minimum == nil && len(sp.Rules) == 0 && sp.Default == nil && sp.Interval == nil && len(sp.Metrics) == 0 {
		return a
	}
	if k == AvailabilitySet {
		c.errorf(pos, "autoscale", "an availability set does not autoscale: its instances are placed by hand (use kind: ScaleSet)")
		return a
	}
	if sp.Maximum == nil || sp.Minimum == nil {
		c.errorf(pos, "autoscale", "autoscale needs minimum and maximum")
		return a
	}
	p := autoscale.Profile{Minimum: *sp.Minimum, Maximum: *sp.Maximum, Default: *sp.Minimum}
	if sp.Default != nil {
		p.Default = *sp.Default
	}
	a.Interval = DefaultAutoscaleInterval
	if sp.Interval != nil {
		a.Interval = sp.Interval.D()
		if a.Interval < time.Second {
			c.errorf(pos, "autoscale.interval", "interval must be at least 1s, got %s", a.Interval)
		}
	}
	a.Metrics = map[string]health.HTTPProbe{}
	for name, m := range sp.Metrics {
		if name == autoscale.MetricCPU {
			c.errorf(pos, "autoscale.metrics."+name, "cpu is kiln's own metric; give a user metric another name")
			continue
		}
		p := health.Probe{HTTP: &health.HTTPProbe{Port: m.Port, Path: m.Path, Status: m.Status}}
		health.DefaultProbe(&p)
		c.fieldErrors(pos, "autoscale.metrics."+name, health.ValidateProbe(p))
		a.Metrics[name] = *p.HTTP
	}
	for i, r := range sp.Rules {
		rule := autoscale.Rule{
			Metric: r.Metric, Statistic: autoscale.Statistic(r.Statistic), TimeWindow: r.TimeWindow.D(),
			Operator: autoscale.Operator(r.Operator), Threshold: r.Threshold, Direction: autoscale.Direction(r.Direction),
			Action: autoscale.Action{Type: autoscale.ActionType(r.Action.Type), Value: 1}, Cooldown: r.Cooldown.D(),
		}
		if rule.Statistic == "" {
			rule.Statistic = autoscale.Average
		}
		if rule.Action.Type == "" {
			rule.Action.Type = autoscale.ChangeCount
		}
		if r.Action.Value != nil {
			rule.Action.Value = *r.Action.Value
		}
		if rule.Cooldown == 0 {
			rule.Cooldown = DefaultCooldown
		}
		if _, ok := a.Metrics[r.Metric]; r.Metric != autoscale.MetricCPU && r.Metric != "" && !ok {
			c.errorf(pos, fmt.Sprintf("autoscale.rules[%d].metric", i), "unknown metric %q: cpu, or a name under autoscale.metrics", r.Metric)
		}
		p.Rules = append(p.Rules, rule)
	}
	a.Profile = p
	c.fieldErrors(pos, "autoscale", autoscale.Validate(p, MaxCapacity, a.Interval))
	if capacity < p.Minimum || capacity > p.Maximum {
		c.errorf(pos, "capacity", "capacity %d is outside autoscale's minimum and maximum (%d-%d)", capacity, p.Minimum, p.Maximum)
	}
	return a
}

type upgradePolicySpec struct {
	Mode    string      `yaml:"mode" doc:"Manual (default: kiln deploy upgrade --instances), Automatic (all at once) or Rolling (in batches behind health)"`
	Rolling rollingSpec `yaml:"rollingUpgradePolicy" doc:"how a Rolling upgrade walks the set"`
}

type rollingSpec struct {
	MaxBatchInstancePercent             *int              `yaml:"maxBatchInstancePercent" doc:"largest batch, percent of capacity (at least one instance); default 20"`
	MaxUnhealthyInstancePercent         *int              `yaml:"maxUnhealthyInstancePercent" doc:"checked before each batch: more unhealthy instances stop the upgrade; default 20"`
	MaxUnhealthyUpgradedInstancePercent *int              `yaml:"maxUnhealthyUpgradedInstancePercent" doc:"checked after each batch, of the upgraded instances; default 20"`
	PauseTimeBetweenBatches             *recipes.Duration `yaml:"pauseTimeBetweenBatches" doc:"wait after each batch; default 0"`
	PrioritizeUnhealthyInstances        bool              `yaml:"prioritizeUnhealthyInstances" doc:"upgrade unhealthy instances first"`
	MaxSurge                            bool              `yaml:"maxSurge" doc:"make each batch's new instances before its old ones go"`
}

type repairsSpec struct {
	Enabled      bool              `yaml:"enabled" doc:"replace, restart or reimage instances unhealthy past the grace period; default false"`
	GracePeriod  *recipes.Duration `yaml:"gracePeriod" doc:"how long an instance is unhealthy before it is repaired; default 10m"`
	RepairAction string            `yaml:"repairAction" doc:"Replace (default), Restart or Reimage"`
}

func (c *checker) upgradePolicy(sp *upgradePolicySpec, pos recipes.Positions) upgrade.Policy {
	// Defaults first, the file's values over them: a written 0 is a value.
	var p upgrade.Policy
	upgrade.Default(&p)
	if sp.Mode != "" {
		p.Mode = upgrade.Mode(sp.Mode)
	}
	r := sp.Rolling
	if r.MaxBatchInstancePercent != nil {
		p.MaxBatchInstancePercent = *r.MaxBatchInstancePercent
	}
	if r.MaxUnhealthyInstancePercent != nil {
		p.MaxUnhealthyInstancePercent = *r.MaxUnhealthyInstancePercent
	}
	if r.MaxUnhealthyUpgradedInstancePercent != nil {
		p.MaxUnhealthyUpgradedInstancePercent = *r.MaxUnhealthyUpgradedInstancePercent
	}
	if r.PauseTimeBetweenBatches != nil {
		p.PauseTimeBetweenBatches = r.PauseTimeBetweenBatches.D()
	}
	p.PrioritizeUnhealthyInstances, p.MaxSurge = r.PrioritizeUnhealthyInstances, r.MaxSurge
	c.fieldErrors(pos, "", upgrade.Validate(p))
	return p
}

func (c *checker) repairs(sp *repairsSpec, h Health, pos recipes.Positions) repair.Policy {
	p := repair.Policy{Enabled: sp.Enabled, Action: repair.Action(sp.RepairAction)}
	if sp.GracePeriod != nil {
		p.GracePeriod = sp.GracePeriod.D()
	}
	repair.Default(&p)
	c.fieldErrors(pos, "", repair.Validate(p))
	if p.Enabled && !h.Enabled() {
		c.errorf(pos, "automaticRepairs.enabled", "repairs follow health: give the set a health probe (health.probe), or a recipe with an HTTP or TCP check")
	}
	return p
}

// remoteHost reports whether a libvirt URI names another machine: its
// instances' user-networking forwards are on that machine's loopback.
func remoteHost(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Hostname() == "" {
		return false
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		return !ip.IsLoopback()
	}
	return u.Hostname() != "localhost"
}

// reachable checks that the controller can reach what it probes and
// balances: with user networking, forwards listen on each host's own
// 127.0.0.1, so a probe, a load balancer or repairs need local hosts, or
// mode network with addresses this host can route to.
func (c *checker) reachable(s *Set, healthWritten bool, pos recipes.Positions) {
	if s.LoadBalancer.Placement == PlaceVM && len(s.Hosts) > 0 && remoteHost(s.Hosts[0]) {
		c.errorf(pos, "hosts[0]", "loadBalancer: the balancer VM runs on the set's first host, %s, and kiln configures it through a port forwarded on that host's 127.0.0.1, which this host cannot reach; list a local host first (qemu:///system)", s.Hosts[0])
	}
	if s.Network.Mode != UserNetwork {
		return
	}
	var uses []string
	if healthWritten {
		uses = append(uses, "health")
	}
	if s.LoadBalancer.Enabled() {
		uses = append(uses, "loadBalancer")
	}
	if s.Repairs.Enabled {
		uses = append(uses, "automaticRepairs")
	}
	if len(uses) == 0 {
		return
	}
	for i, h := range s.Hosts {
		if remoteHost(h) {
			c.errorf(pos, fmt.Sprintf("hosts[%d]", i), "%s: instances on %s forward their ports on its own 127.0.0.1 (user networking), which this host cannot probe or balance; use network: {mode: network, name: ...} with addresses this host reaches, or local hosts only", strings.Join(uses, ", "), h)
		}
	}
}
