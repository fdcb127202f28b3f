// Package deploy runs fleets of VMs made from kiln images on libvirt, with
// the semantics of cloud scale sets and availability sets (design.md,
// section 6).
//
// It is built in layers; each lower one is pure and knows nothing of the
// ones above it:
//
//	fleet.yaml ──► LoadFleet ──► Fleet{Sets}            fleet.go: strict YAML, defaults, every problem at once
//	                                │
//	                                ▼
//	               Set.Placements, PlanScale           placement.go: names, domains, hosts; what to create or remove
//	                                │
//	                                ▼
//	               reconcile against a Hypervisor      what exists vs what the fleet asks for; rolling upgrades,
//	                                │                  health, autoscale (an interface, faked in tests)
//	                                ▼
//	               libvirt backend                     domains, overlays on one verified base per host, seeds,
//	                                                   networks; kiln's state in domain metadata
//
//	Topology (graph.go) is the picture of any of these: PlannedTopology draws
//	a fleet file alone, the reconciler fills in what it finds; Mermaid, DOT
//	and SVG (Graphviz) renderings.
//
//	KubeVirt (kubevirt.go) writes a fleet file alone as KubeVirt objects: a
//	VirtualMachinePool per set and a cloud-init Secret per instance. It is
//	the only file here that uses the Kubernetes APIs (depcheck_test.go).
//
// A fleet file holds one YAML document per set:
//
//	apiVersion: kiln/v1
//	kind: ScaleSet                # or AvailabilitySet
//	name: web                     # instances web-0, web-1, ...
//	image: oci://registry.example.com/team/web:1.2   # or ./web.qcow2 with web.manifest.json beside it
//	recipe: ./web.yaml            # its boot section makes each instance's seed
//	capacity: 3
//	size: {vcpus: 1, memory: 512MiB, disk: 8GiB}
//	hosts: [qemu:///system]
//
// examples/fleet.yaml is a commented example. It is read with the recipes'
// strict decoder (recipes.DecodeStrict): unknown keys come with the closest
// valid one, and every problem is a recipes.Error placed at file:line:col,
// so the CLI prints fleet and recipe errors alike.
//
// Placement is by ordinal, never by arrival: instance n of a set is in
// update domain n mod updateDomains and fault domain n mod faultDomains,
// and with several hosts a fault domain is a host. Ordinals 0..capacity-1
// are kept (lowest missing ones re-created, the highest removed first), so
// every domain holds within one instance of every other, and a crash or a
// hand deletion is repaired in place.
//
// deploy may import recipes, registry, manifest and internal packages;
// never builder or cmd (depcheck_test.go).
package deploy
