package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/controller"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/atomicfile"
)

// exitPending is kiln deploy plan's answer when apply would change
// something (0: nothing to do).
const exitPending = 3

func newDeployCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Run fleets of images on libvirt: scale sets and availability sets",
		Long: `A fleet file (see examples/fleet.yaml and docs/deploy.md) describes sets of
identical instances of one image: a ScaleSet (capacity by hand) or an
AvailabilitySet (fault and update domains). Each instance is a copy-on-write
overlay on one shared base volume per host and image, with its own NoCloud
seed, as a libvirt domain that carries kiln's metadata. kiln never touches a
domain without that metadata.

The fleet file is the desired state, libvirt holds the actual state: plan
shows the difference, apply removes it, and both can be run any time — an
apply killed half-way is completed by the next.`,
	}
	cmd.PersistentFlags().String("cache-dir", builder.DefaultCacheDir(), "kiln's cache (pulled images, locks)")
	cmd.PersistentFlags().Bool("insecure", false, "allow plain HTTP to the images' registry")
	plan := &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what apply would change (exit 0: nothing, 3: changes)",
		Example: `  kiln deploy plan fleet.yaml
  kiln deploy plan fleet.yaml --output json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return deployRun(cmd, args[0], "", false) },
	}
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Make the hosts run what the fleet file says",
		Long: `Creates missing instances (lowest ordinal first), removes those beyond a set's
capacity (highest first), starts stopped ones, and reports instances made
from another image or spec without touching them. A set of kiln's that the
file no longer names is reported and removed only with --prune.`,
		Example: `  kiln deploy apply fleet.yaml`,
		Args:    exactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return deployRun(cmd, args[0], "", true) },
	}
	apply.Flags().Bool("prune", false, "also remove kiln instances of sets the file does not name")
	apply.Flags().Int("parallel", 4, "how many instances are created at once")
	destroy := &cobra.Command{
		Use:   "destroy FILE SET",
		Short: "Remove a set's instances: domains, overlays and seeds",
		Long: `Removes every instance of the set. The shared base volume of its image stays
on each host for other sets and later applies.`,
		Example: `  kiln deploy destroy fleet.yaml web`,
		Args:    exactArgs(2),
		RunE:    func(cmd *cobra.Command, args []string) error { return deployRun(cmd, args[0], args[1], true) },
	}
	status := &cobra.Command{
		Use:   "status FILE [SET]",
		Short: "List the fleet's instances: state, health, fault and update domain, image, ports or address",
		Long: `Lists the instances of the fleet's sets (or of SET) as their hosts hold them:
state, health and load-balancer membership (as the fleet's controller, kiln
deploy run, last saw them; - when none has run), fault and update domain, the image digest each overlay sits on, where
the image came from (the registry reference pinned to the digest pulled, or
the local file), and how to reach it: the 127.0.0.1 ports forwarded to the
guest (user networking) or its address on a libvirt network.`,
		Example: `  kiln deploy status fleet.yaml
  kiln deploy status fleet.yaml web --output json`,
		Args: rangeArgs(1, 2),
		RunE: deployStatus,
	}
	status.Flags().String("state-dir", "", "the controller's state (default: ~/.local/state/kiln/fleets/NAME-HASH of the fleet file)")
	console := &cobra.Command{
		Use:   "console FILE SET/INSTANCE",
		Short: "Print an instance's serial console log",
		Long: `Prints the serial console log of an instance (every boot of it), read from
its host over libvirt's protocol, so remote hosts work too. INSTANCE is the
instance's ordinal or name: web/2 or web/web-2. With --follow it keeps
printing what the guest writes until interrupted.`,
		Example: `  kiln deploy console fleet.yaml web/0
  kiln deploy console fleet.yaml web/web-2 --follow`,
		Args: exactArgs(2),
		RunE: deployConsole,
	}
	console.Flags().BoolP("follow", "f", false, "keep printing new output until interrupted")
	graph := &cobra.Command{
		Use:   "graph FILE [SET]",
		Short: "Draw the fleet's topology as Mermaid, Graphviz DOT or SVG",
		Long: `Draws hosts, sets, fault and update domains and instances of the fleet file
(or of SET) — as Mermaid (for Markdown), DOT, or SVG through Graphviz's dot.
By default it draws the plan, from the file alone; --live asks the hosts and
draws what they hold: each instance's state, its forwarded ports or address,
the image digest it runs, and instances beyond the plan.`,
		Example: `  kiln deploy graph fleet.yaml --format svg -o fleet.svg
  kiln deploy graph fleet.yaml web --live --format mermaid`,
		Args: rangeArgs(1, 2),
		RunE: deployGraph,
	}
	graph.Flags().Bool("live", false, "draw what the hosts hold, not only the plan")
	graph.Flags().String("format", "mermaid", "mermaid, dot or svg")
	graph.Flags().StringP("out", "o", "", "file to write (default: standard output)")
	restart := &cobra.Command{
		Use:   "restart FILE SET --by update-domain",
		Short: "Restart a set one update domain at a time",
		Long: `Restarts every instance of the set, one update domain at a time: the next
domain starts only when all of the previous one run again (--wait bounds
that), so at most one update domain is ever down. A domain that does not come
back stops the restart and says which instances.`,
		Example: `  kiln deploy restart fleet.yaml edge --by update-domain`,
		Args:    exactArgs(2),
		RunE:    deployRestart,
	}
	restart.Flags().String("by", "update-domain", "the unit restarted at a time: update-domain")
	restart.Flags().Duration("wait", 5*time.Minute, "how long an update domain may take to run again")
	scale := &cobra.Command{
		Use:   "scale FILE SET N",
		Short: "Set a set's capacity in the fleet file, then apply",
		Long: `Writes capacity N for the set into the fleet file (its comments and other
sets kept; the file must stay valid) and applies it: the file remains the one
desired state, so a later apply does not undo the scale.`,
		Example: `  kiln deploy scale fleet.yaml web 4`,
		Args:    exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[2])
			if err != nil {
				return usageError{fmt.Errorf("capacity %q is not a number", args[2])}
			}
			if err := deploy.SetCapacity(args[0], args[1], n); err != nil {
				return err
			}
			return deployRun(cmd, args[0], "", true)
		},
	}
	cmd.AddCommand(plan, apply, destroy, status, console, graph, restart, scale, newDeployExportCommand())
	cmd.AddCommand(newDeployRunCommands()...)
	return cmd
}

// fleetHosts connects to every host the fleet's sets name.
func fleetHosts(f *deploy.Fleet) (deploy.Hosts, func(), error) {
	hosts := deploy.Hosts{}
	closeAll := func() {
		for _, h := range hosts {
			h.(*deploy.Libvirt).Close()
		}
	}
	for _, s := range f.Sets {
		for _, uri := range s.Hosts {
			if _, ok := hosts[uri]; ok {
				continue
			}
			h, err := deploy.DialLibvirt(uri, deploy.LibvirtOptions{})
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			hosts[uri] = h
		}
	}
	return hosts, closeAll, nil
}

// hasSet is a usage error when the fleet file has no set of that name.
func hasSet(f *deploy.Fleet, name string) error {
	if f.Set(name) == nil {
		return usageError{fmt.Errorf("%s has no set %q", f.File, name)}
	}
	return nil
}

// observeFleet connects to the fleet's hosts and lists kiln's instances on
// them; closeHosts ends the connections.
func observeFleet(cmd *cobra.Command, f *deploy.Fleet) (hosts deploy.Hosts, actual []deploy.Instance, closeHosts func(), err error) {
	hosts, closeHosts, err = fleetHosts(f)
	if err != nil {
		return nil, nil, nil, err
	}
	if actual, err = hosts.Observe(cmd.Context()); err != nil {
		closeHosts()
		return nil, nil, nil, err
	}
	return hosts, actual, closeHosts, nil
}

// desiredOf resolves the images of the fleet's sets and places their
// instances.
func desiredOf(ctx context.Context, cmd *cobra.Command, f *deploy.Fleet, actual []deploy.Instance) ([]string, []deploy.Desired, error) {
	c, err := newRegistryClient(cmd)
	if err != nil {
		return nil, nil, err
	}
	var sets []string
	var desired []deploy.Desired
	for _, s := range f.Sets {
		sets = append(sets, s.Name)
		r, err := deploy.Resolve(ctx, s, c, cfg.GetString("cache-dir"))
		if err != nil {
			return nil, nil, err
		}
		d, err := r.Desired(actual)
		if err != nil {
			return nil, nil, err
		}
		desired = append(desired, d...)
	}
	return sets, desired, nil
}

func deployRun(cmd *cobra.Command, file, destroySet string, act bool) error {
	ctx := cmd.Context()
	f, err := deploy.LoadFleet(file)
	if err != nil {
		return err
	}
	if destroySet != "" {
		if err := hasSet(f, destroySet); err != nil {
			return err
		}
	}
	// Destroying a set wants none of it, and nothing of the other sets is
	// looked at: no image is pulled or checked for it.
	hosts, closeHosts, err := fleetHosts(f)
	if err != nil {
		return err
	}
	defer closeHosts()
	// A set's balancer VM goes with it.
	sets, desired := []string{destroySet, deploy.BalancerVMSet(destroySet)}, []deploy.Desired(nil)
	if destroySet == "" {
		// The instances there are keep their ordinals (a surge upgrade
		// leaves gaps); apply observes again under the sets' locks.
		actual, err := hosts.Observe(ctx)
		if err != nil {
			return err
		}
		if sets, desired, err = desiredOf(ctx, cmd, f, actual); err != nil {
			return err
		}
	}
	var plan deploy.Plan
	if act {
		lockDir := filepath.Join(cfg.GetString("cache-dir"), "deploy", "locks")
		if err := os.MkdirAll(lockDir, 0o755); err != nil {
			return err
		}
		plan, err = deploy.Apply(ctx, hosts, sets, desired, deploy.ApplyOptions{LockDir: lockDir, Prune: cfg.GetBool("prune"), Parallel: cfg.GetInt("parallel"), Progress: newRenderer(cmd.ErrOrStderr())})
		if err != nil {
			return err
		}
	} else {
		actual, err := hosts.Observe(ctx)
		if err != nil {
			return err
		}
		plan = deploy.Diff(sets, desired, actual, false)
	}
	if destroySet != "" {
		// The other sets' instances were only seen (as not in this run), never touched.
		kept := plan.Changes[:0]
		for _, c := range plan.Changes {
			if c.Set == destroySet || c.Set == deploy.BalancerVMSet(destroySet) {
				kept = append(kept, c)
			}
		}
		plan.Changes, plan.Unchanged = kept, 0
	}
	if jsonOutput() {
		if err := printResult(cmd, plan); err != nil {
			return err
		}
	} else {
		printPlan(cmd, plan, act)
	}
	if !act && plan.Pending() {
		return reported{err: errors.New("changes pending"), code: exitPending}
	}
	return nil
}

func printPlan(cmd *cobra.Command, p deploy.Plan, applied bool) {
	w := cmd.OutOrStdout()
	for _, c := range p.Changes {
		mark := map[deploy.Op]string{deploy.OpCreate: "+", deploy.OpDelete: "-", deploy.OpStart: "~", deploy.OpOutdated: "!", deploy.OpForeign: "?"}[c.Op]
		fmt.Fprintf(w, "%s %-8s %-20s on %s: %s\n", mark, c.Op, c.Instance, c.Host, c.Reason)
	}
	verb := "to change"
	if applied {
		verb = "changed"
	}
	n := 0
	for _, c := range p.Changes {
		if c.Act {
			n++
		}
	}
	fmt.Fprintf(w, "%d %s, %d unchanged\n", n, verb, p.Unchanged)
}

func deployStatus(cmd *cobra.Command, args []string) error {
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	only := ""
	if len(args) == 2 {
		only = args[1]
		if err := hasSet(f, only); err != nil {
			return err
		}
	}
	_, actual, closeHosts, err := observeFleet(cmd, f)
	if err != nil {
		return err
	}
	defer closeHosts()
	mine := []deploy.Instance{}
	for _, a := range actual {
		if f.Set(a.Meta.Set) != nil && (only == "" || a.Meta.Set == only) {
			mine = append(mine, a)
		}
	}
	sort.Slice(mine, func(i, j int) bool {
		if mine[i].Meta.Set != mine[j].Meta.Set {
			return mine[i].Meta.Set < mine[j].Meta.Set
		}
		return mine[i].Meta.Ordinal < mine[j].Meta.Ordinal
	})
	// Health and load-balancer membership are what a controller (kiln
	// deploy run) saw at its last tick, when one has run.
	health := map[string]view.InstanceView{}
	if dir, err := stateDir(args[0]); err == nil {
		if snap, err := controller.ReadSnapshot(dir); err == nil {
			for _, sv := range snap.Sets {
				for _, in := range sv.Instances {
					health[in.Name] = in
				}
			}
		}
	}
	if jsonOutput() {
		type withHealth struct {
			deploy.Instance
			Health       string `json:"health,omitempty"`
			HealthReason string `json:"healthReason,omitempty"`
			LoadBalancer string `json:"loadBalancer,omitempty"`
		}
		out := []withHealth{}
		for _, a := range mine {
			h := health[a.Name]
			out = append(out, withHealth{Instance: a, Health: string(h.Health), HealthReason: h.HealthReason, LoadBalancer: string(h.LoadBalancer)})
		}
		return printResult(cmd, map[string]any{"instances": out})
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tHEALTH\tLB\tFD\tUD\tIMAGE\tREACH\tHOST\tSOURCE")
	for _, a := range mine {
		var reach []string
		for g, h := range a.Ports {
			reach = append(reach, fmt.Sprintf("127.0.0.1:%d->%d", h, g))
		}
		sort.Strings(reach)
		if a.Address != "" {
			reach = append(reach, a.Address)
		}
		h := health[a.Name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", a.Name, a.State, orDash(string(h.Health)), orDash(string(h.LoadBalancer)),
			a.Meta.FaultDomain, a.Meta.UpdateDomain, shortDigest(a.Meta.Image), orDash(strings.Join(reach, ",")), a.Host, orDash(a.Meta.Source))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// instanceArg parses SET/INSTANCE (web/2 or web/web-2) against the fleet.
func instanceArg(f *deploy.Fleet, arg string) (set, inst string, err error) {
	set, inst, ok := strings.Cut(arg, "/")
	if !ok {
		return "", "", usageError{fmt.Errorf("%q: want SET/INSTANCE, e.g. web/0 or web/web-0", arg)}
	}
	if err := hasSet(f, set); err != nil {
		return "", "", err
	}
	if _, err := strconv.Atoi(inst); err == nil {
		inst = set + "-" + inst
	}
	if _, ok := deploy.ParseInstanceName(set, inst); !ok {
		return "", "", usageError{fmt.Errorf("%q is not an instance of set %s: want %s/N or %s/%s-N", arg, set, set, set, set)}
	}
	return set, inst, nil
}

// instanceHost finds the host of the instance a SET/INSTANCE argument
// names; closeHosts ends the connections.
func instanceHost(cmd *cobra.Command, file, arg string) (inst string, host deploy.Hypervisor, closeHosts func(), err error) {
	f, err := deploy.LoadFleet(file)
	if err != nil {
		return "", nil, nil, err
	}
	set, inst, err := instanceArg(f, arg)
	if err != nil {
		return "", nil, nil, err
	}
	hosts, actual, closeHosts, err := observeFleet(cmd, f)
	if err != nil {
		return "", nil, nil, err
	}
	for _, a := range actual {
		if a.Name == inst && a.Meta.Set == set {
			return inst, hosts[a.Host], closeHosts, nil
		}
	}
	closeHosts()
	return "", nil, nil, fmt.Errorf("set %s has no instance %s on its hosts (kiln deploy status %s lists them)", set, inst, file)
}

// deployConsole prints an instance's serial log, and with --follow keeps
// polling its host for more.
func deployConsole(cmd *cobra.Command, args []string) error {
	inst, host, closeHosts, err := instanceHost(cmd, args[0], args[1])
	if err != nil {
		return err
	}
	defer closeHosts()
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	var offset int64
	for {
		if offset, err = host.Console(ctx, inst, offset, out); err != nil {
			return err
		}
		if !cfg.GetBool("follow") {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second): // polling the host for new output
		}
	}
}

func deployRestart(cmd *cobra.Command, args []string) error {
	if by := cfg.GetString("by"); by != "update-domain" {
		return usageError{fmt.Errorf("--by %q: only update-domain is supported", by)}
	}
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	if err := hasSet(f, args[1]); err != nil {
		return err
	}
	hosts, closeHosts, err := fleetHosts(f)
	if err != nil {
		return err
	}
	defer closeHosts()
	if err := deploy.RestartByUpdateDomain(cmd.Context(), hosts, args[1], cfg.GetDuration("wait"), newRenderer(cmd.ErrOrStderr())); err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"set": args[1], "restarted": true})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restarted %s, one update domain at a time\n", args[1])
	return nil
}

func deployGraph(cmd *cobra.Command, args []string) error {
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	if len(args) == 2 {
		if err := hasSet(f, args[1]); err != nil {
			return err
		}
	}
	if format := cfg.GetString("format"); !slices.Contains([]string{"mermaid", "dot", "svg"}, format) {
		return usageError{fmt.Errorf("--format %q: want mermaid, dot or svg", format)}
	}
	t := deploy.PlannedTopology(f)
	if cfg.GetBool("live") {
		_, actual, closeHosts, err := observeFleet(cmd, f)
		if err != nil {
			return err
		}
		defer closeHosts()
		t = deploy.ObservedTopology(f, actual)
	}
	if len(args) == 2 {
		t = t.Only(args[1])
	}
	var out []byte
	switch cfg.GetString("format") {
	case "mermaid":
		out = []byte(t.Mermaid())
	case "dot":
		out = []byte(t.DOT())
	case "svg":
		if out, err = t.SVG(cmd.Context()); err != nil {
			return err
		}
	}
	if p := cfg.GetString("out"); p != "" {
		return atomicfile.Write(p, out, 0o644)
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}
