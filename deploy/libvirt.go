package deploy

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/kiln-project/kiln/internal/qemu"
)

// Libvirt is a host reached through libvirt's RPC protocol
// (github.com/digitalocean/go-libvirt: pure Go). Everything kiln makes is
// described with libvirt.org/go/libvirtxml and carries kiln's metadata.
type Libvirt struct {
	uri  string
	conn *libvirt.Libvirt
	opts LibvirtOptions
	// bases serialises making the pool and base volumes: instances are
	// created in parallel, the base of an image is uploaded once.
	bases sync.Mutex
}

// LibvirtOptions configure a libvirt host.
type LibvirtOptions struct {
	// Pool is the storage pool kiln keeps bases, overlays and seeds in;
	// default "kiln", made as a directory pool at PoolPath when missing.
	Pool     string
	PoolPath string
	// Accel is the domain type: kvm only where KVM really works (the
	// default asks internal/qemu), qemu (TCG) otherwise.
	Accel qemu.Accel
	// InstanceRoom is the free space a host's pool must have for each
	// instance made (its overlay grows as the guest writes; a full pool
	// pauses guests); default 256 MiB.
	InstanceRoom int64
}

// DialLibvirt connects to a libvirt URI (qemu:///system,
// qemu+unix:///system?socket=…, qemu+ssh://…, qemu+tcp://…).
func DialLibvirt(uri string, opts LibvirtOptions) (*Libvirt, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", uri, err)
	}
	conn, err := libvirt.ConnectToURI(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is libvirtd running there, and may this user use it?)", uri, err)
	}
	if opts.Pool == "" {
		opts.Pool = "kiln"
	}
	if opts.PoolPath == "" {
		opts.PoolPath = "/var/lib/libvirt/images/kiln"
	}
	if opts.Accel == "" {
		opts.Accel, _ = qemu.DetectAccel()
	}
	if opts.InstanceRoom == 0 {
		opts.InstanceRoom = 256 << 20
	}
	return &Libvirt{uri: uri, conn: conn, opts: opts}, nil
}

// Close ends the connection.
func (h *Libvirt) Close() error { return h.conn.Disconnect() }

// URI is the host's libvirt URI.
func (h *Libvirt) URI() string { return h.uri }

// pool finds kiln's storage pool, making it (a directory pool) when missing.
func (h *Libvirt) pool() (libvirt.StoragePool, error) {
	p, err := h.conn.StoragePoolLookupByName(h.opts.Pool)
	if err == nil {
		if active, _ := h.conn.StoragePoolIsActive(p); active == 0 {
			if err := h.conn.StoragePoolCreate(p, 0); err != nil {
				return p, fmt.Errorf("%s: start storage pool %s: %w", h.uri, h.opts.Pool, err)
			}
		}
		// No refresh here: instances are made in parallel, and libvirt
		// refuses to refresh a pool with an upload running (Instances
		// refreshes before it lists).
		return p, nil
	}
	if !isNoStoragePool(err) {
		return p, fmt.Errorf("%s: storage pool %s: %w", h.uri, h.opts.Pool, err)
	}
	doc := &libvirtxml.StoragePool{Type: "dir", Name: h.opts.Pool, Target: &libvirtxml.StoragePoolTarget{Path: h.opts.PoolPath}}
	x, err := doc.Marshal()
	if err != nil {
		return p, err
	}
	if p, err = h.conn.StoragePoolDefineXML(x, 0); err != nil {
		return p, fmt.Errorf("%s: define storage pool %s at %s: %w", h.uri, h.opts.Pool, h.opts.PoolPath, err)
	}
	if err := h.conn.StoragePoolBuild(p, 0); err != nil {
		return p, fmt.Errorf("%s: build storage pool %s: %w", h.uri, h.opts.Pool, err)
	}
	if err := h.conn.StoragePoolCreate(p, 0); err != nil {
		return p, fmt.Errorf("%s: start storage pool %s: %w", h.uri, h.opts.Pool, err)
	}
	h.conn.StoragePoolSetAutostart(p, 1)
	return p, nil
}

func isNoStoragePool(err error) bool {
	var le libvirt.Error
	return errors.As(err, &le) && le.Code == uint32(libvirt.ErrNoStoragePool)
}

func isNoDomain(err error) bool {
	var le libvirt.Error
	return errors.As(err, &le) && le.Code == uint32(libvirt.ErrNoDomain)
}

func isNoVolume(err error) bool {
	var le libvirt.Error
	return errors.As(err, &le) && le.Code == uint32(libvirt.ErrNoStorageVol)
}

// Volume names: one base per image digest, and an overlay and a seed per
// instance, named after it, so a half-made instance is found by its files.
func baseVolume(digest string) string {
	return "kiln-base-" + strings.TrimPrefix(digest, "sha256:") + ".qcow2"
}
func overlayVolume(instance string) string { return instance + ".qcow2" }
func seedVolume(instance string) string    { return instance + "-seed.iso" }

// consoleVolume is the instance's serial log: a volume of the pool, so it
// is read over libvirt's protocol from any host (kiln deploy console) and
// removed with the instance.
func consoleVolume(instance string) string { return instance + "-console.log" }

// instanceOfVolume names the instance a volume belongs to, if it is one of
// an instance's.
func instanceOfVolume(vol string) (string, bool) {
	if strings.HasPrefix(vol, "kiln-base-") {
		return "", false
	}
	for _, suffix := range []string{"-seed.iso", "-console.log", ".qcow2"} {
		if name, ok := strings.CutSuffix(vol, suffix); ok {
			return name, true
		}
	}
	return "", false
}

// Instances lists kiln's domains (by their metadata) and half-made
// instances (an overlay or seed without a domain).
func (h *Libvirt) Instances(ctx context.Context) ([]Instance, int, error) {
	doms, _, err := h.conn.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: list domains: %w", h.uri, err)
	}
	var out []Instance
	foreign := 0
	have := map[string]bool{}
	for _, d := range doms {
		raw, err := h.conn.DomainGetMetadata(d, int32(libvirt.DomainMetadataElement), libvirt.OptString{MetadataNamespace}, 0)
		if err != nil {
			foreign++ // no kiln metadata: never touched
			continue
		}
		var m Metadata
		// libvirt hands the element back without its namespace.
		dec := xml.NewDecoder(strings.NewReader(raw))
		dec.DefaultSpace = MetadataNamespace
		if err := dec.Decode(&m); err != nil {
			return nil, 0, fmt.Errorf("%s: domain %s: kiln metadata: %w", h.uri, d.Name, err)
		}
		state, _, err := h.conn.DomainGetState(d, 0)
		switch {
		case isNoDomain(err):
			continue // deleted since it was listed (a controller replacing it): not there
		case err != nil:
			return nil, 0, fmt.Errorf("%s: domain %s: %w", h.uri, d.Name, err)
		}
		inst := Instance{Name: d.Name, Host: h.uri, State: stateOf(libvirt.DomainState(state)), Meta: m, Ports: m.portMap()}
		if inst.State == Running && m.Ports == "" {
			inst.Address = h.address(d)
		}
		out = append(out, inst)
		have[d.Name] = true
	}
	p, err := h.conn.StoragePoolLookupByName(h.opts.Pool)
	if err == nil {
		h.conn.StoragePoolRefresh(p, 0)
		vols, _, err := h.conn.StoragePoolListAllVolumes(p, 1, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: list volumes: %w", h.uri, err)
		}
		partial := map[string]bool{}
		for _, v := range vols {
			if name, ok := instanceOfVolume(v.Name); ok && !have[name] {
				partial[name] = true
			}
		}
		for name := range partial {
			set, ord, ok := splitInstanceName(name)
			if !ok {
				continue
			}
			out = append(out, Instance{Name: name, Host: h.uri, State: Partial, Meta: Metadata{Set: set, Ordinal: ord}})
		}
	} else if !isNoStoragePool(err) {
		return nil, 0, fmt.Errorf("%s: storage pool %s: %w", h.uri, h.opts.Pool, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, foreign, nil
}

// address is a running guest's first IPv4 address on its libvirt network,
// from the network's DHCP leases; "" until it has one.
func (h *Libvirt) address(d libvirt.Domain) string {
	ifaces, err := h.conn.DomainInterfaceAddresses(d, uint32(libvirt.DomainInterfaceAddressesSrcLease), 0)
	if err != nil {
		return ""
	}
	for _, i := range ifaces {
		for _, a := range i.Addrs {
			if a.Type == int32(libvirt.IPAddrTypeIpv4) {
				return a.Addr
			}
		}
	}
	return ""
}

// splitInstanceName reads "<set>-<ordinal>" when the set is not known
// (a volume a crash left behind): the set is what comes before the last dash.
func splitInstanceName(name string) (string, int, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, ok := ParseInstanceName(name[:i], name)
	return name[:i], n, ok
}

func stateOf(s libvirt.DomainState) State {
	switch s {
	case libvirt.DomainRunning, libvirt.DomainBlocked:
		return Running
	case libvirt.DomainPaused, libvirt.DomainPmsuspended:
		return Paused
	case libvirt.DomainShutoff, libvirt.DomainShutdown:
		return Stopped
	case libvirt.DomainCrashed:
		return Crashed
	}
	return Unknown
}

// Create makes (or completes) an instance: the base volume for its image
// when this host has none, its overlay, seed and console log, its domain;
// then starts it.
func (h *Libvirt) Create(ctx context.Context, s InstanceSpec) error {
	h.bases.Lock()
	p, err := h.pool()
	if err != nil {
		h.bases.Unlock()
		return err
	}
	base, err := h.ensureBase(p, s)
	h.bases.Unlock()
	if err != nil {
		return err
	}
	// What a crash left of this instance goes first: the overlay and seed
	// are remade from scratch, they hold nothing yet.
	if err := h.Delete(ctx, s.Name); err != nil {
		return err
	}
	if err := h.checkRoom(p, s.Name, h.opts.InstanceRoom+int64(len(s.Seed)), "each instance needs room to grow"); err != nil {
		return err
	}
	overlay, err := h.createOverlay(p, s, base)
	if err != nil {
		return err
	}
	seed, err := h.upload(p, seedVolume(s.Name), int64(len(s.Seed)), bytes.NewReader(s.Seed))
	if err != nil {
		return err
	}
	console, err := h.createVolume(p, rawVolume(consoleVolume(s.Name), 0))
	if err != nil {
		return err
	}
	if s.Network == "user" || s.Network == "" {
		if s.Meta.Ports, err = forwardPorts(s.Ports); err != nil {
			return err
		}
		s.Meta.Listen = listenForwards(s.Listen)
	}
	doc, err := h.domainXML(s, overlay, seed, console)
	if err != nil {
		return err
	}
	d, err := h.conn.DomainDefineXML(doc)
	if err != nil {
		return fmt.Errorf("%s: define %s: %w", h.uri, s.Name, err)
	}
	if err := h.conn.DomainCreate(d); err != nil {
		return fmt.Errorf("%s: start %s: %w", h.uri, s.Name, err)
	}
	return nil
}

// checkRoom fails, saying how much is free and what it was for, when the
// pool has less than need bytes free: better than a guest paused on a full
// disk, or a base upload cut short.
func (h *Libvirt) checkRoom(p libvirt.StoragePool, what string, need int64, why string) error {
	_, _, _, avail, err := h.conn.StoragePoolGetInfo(p)
	if err != nil {
		return fmt.Errorf("%s: storage pool %s: %w", h.uri, h.opts.Pool, err)
	}
	if int64(avail) >= need {
		return nil
	}
	return fmt.Errorf("%s: not enough disk for %s: storage pool %s has %d MiB free, %d MiB needed (%s); free space on the host, or give the pool a bigger disk",
		h.uri, what, h.opts.Pool, avail>>20, (need+1<<20-1)>>20, why)
}

// ensureBase uploads the image once per host and digest. A marker volume
// made after the upload says it is complete: a base a crash cut short has
// none, and is uploaded again (libvirt cannot rename a volume into place).
func (h *Libvirt) ensureBase(p libvirt.StoragePool, s InstanceSpec) (string, error) {
	name := baseVolume(s.Meta.Image)
	if v, err := h.conn.StorageVolLookupByName(p, name); err == nil {
		if _, err := h.conn.StorageVolLookupByName(p, name+".complete"); err == nil {
			return h.conn.StorageVolGetPath(v)
		}
	}
	f, err := os.Open(s.BasePath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := h.checkRoom(p, "the image "+short(s.Meta.Image), st.Size()+h.opts.InstanceRoom, "the base volume, and room for one instance"); err != nil {
		return "", err
	}
	path, err := h.upload(p, name, st.Size(), f)
	if err != nil {
		return "", err
	}
	if _, err := h.upload(p, name+".complete", 1, strings.NewReader("\n")); err != nil {
		return "", err
	}
	return path, nil
}

// createVolume makes a volume from its description and returns its path.
func (h *Libvirt) createVolume(p libvirt.StoragePool, doc *libvirtxml.StorageVolume) (string, error) {
	v, err := h.defineVolume(p, doc)
	if err != nil {
		return "", err
	}
	return h.conn.StorageVolGetPath(v)
}

// defineVolume makes a volume from its description.
func (h *Libvirt) defineVolume(p libvirt.StoragePool, doc *libvirtxml.StorageVolume) (libvirt.StorageVol, error) {
	x, err := doc.Marshal()
	if err != nil {
		return libvirt.StorageVol{}, err
	}
	v, err := h.conn.StorageVolCreateXML(p, x, 0)
	if err != nil {
		return v, fmt.Errorf("%s: create volume %s: %w", h.uri, doc.Name, err)
	}
	return v, nil
}

// upload makes a volume of size bytes and streams r into it whole (the
// volume is raw to libvirt: a qcow2 base arrives header and all); a failure
// removes the volume, so a half-uploaded one is never used.
func (h *Libvirt) upload(p libvirt.StoragePool, name string, size int64, r io.Reader) (string, error) {
	if v, err := h.conn.StorageVolLookupByName(p, name); err == nil {
		h.conn.StorageVolDelete(v, 0)
	}
	v, err := h.defineVolume(p, rawVolume(name, size))
	if err != nil {
		return "", err
	}
	if err := h.conn.StorageVolUpload(v, r, 0, uint64(size), 0); err != nil {
		h.conn.StorageVolDelete(v, 0)
		return "", fmt.Errorf("%s: upload %s: %w", h.uri, name, err)
	}
	return h.conn.StorageVolGetPath(v)
}

// rawVolume describes a raw volume of size bytes.
func rawVolume(name string, size int64) *libvirtxml.StorageVolume {
	return &libvirtxml.StorageVolume{Name: name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}}}
}

// createOverlay makes the instance's copy-on-write disk on the base.
func (h *Libvirt) createOverlay(p libvirt.StoragePool, s InstanceSpec, base string) (string, error) {
	return h.createVolume(p, &libvirtxml.StorageVolume{Name: overlayVolume(s.Name),
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(s.DiskBytes)},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{Path: base,
			Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}}})
}

// forwardPorts picks a free 127.0.0.1 port for each guest port.
func forwardPorts(guest []int) (string, error) {
	var parts []string
	for _, g := range guest {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		hp := l.Addr().(*net.TCPAddr).Port
		l.Close()
		parts = append(parts, fmt.Sprintf("%d:%d", g, hp))
	}
	return strings.Join(parts, ","), nil
}

// listenForwards writes InstanceSpec.Listen as Metadata.Listen, in guest
// port order.
func listenForwards(l map[int]string) string {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, fmt.Sprintf("%d=%s", g, l[g]))
	}
	return strings.Join(parts, ",")
}

// portMap reads Ports ("guest:host,…").
func (m Metadata) portMap() map[int]int {
	if m.Ports == "" {
		return nil
	}
	out := map[int]int{}
	for _, p := range strings.Split(m.Ports, ",") {
		g, hp, ok := strings.Cut(p, ":")
		gi, e1 := strconv.Atoi(g)
		hi, e2 := strconv.Atoi(hp)
		if ok && e1 == nil && e2 == nil {
			out[gi] = hi
		}
	}
	return out
}

// domainXML describes the instance's domain.
func (h *Libvirt) domainXML(s InstanceSpec, overlay, seed, console string) (string, error) {
	meta, err := xml.Marshal(s.Meta)
	if err != nil {
		return "", err
	}
	domType := "qemu"
	if h.opts.Accel == qemu.KVM {
		domType = "kvm"
	}
	d := &libvirtxml.Domain{
		Type:     domType,
		Name:     s.Name,
		Metadata: &libvirtxml.DomainMetadata{XML: string(meta)},
		Memory:   &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(max(s.VCPUs, 1))},
		OS: &libvirtxml.DomainOS{
			// i440fx: one flat PCI bus, so the NIC given on QEMU's command
			// line below can have a fixed slot libvirt never hands out.
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
					Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: overlay}},
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}},
				{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
					Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: seed}},
					Target:   &libvirtxml.DomainDiskTarget{Dev: "hdc", Bus: "ide"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{}},
			},
			Serials: []libvirtxml.DomainSerial{{
				// Appended to: the log keeps every boot of the instance.
				Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: console, Append: "on"}},
			}},
		},
	}
	if s.Firmware == "uefi" {
		// Without the two features libvirt picks OVMF with Microsoft's
		// Secure Boot keys enrolled, which refuses kiln's unsigned boot loader.
		d.OS.Firmware = "efi"
		d.OS.FirmwareInfo = &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
			{Name: "secure-boot", Enabled: "no"}, {Name: "enrolled-keys", Enabled: "no"}}}
	}
	switch s.Network {
	case "network":
		d.Devices.Interfaces = []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: s.NetworkName}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}
	default:
		// QEMU user networking with forwards on 127.0.0.1: works on any
		// host, no bridge, nothing on the host's networks. libvirt 9's own
		// <portForward> needs passt; QEMU's hostfwd needs nothing.
		netdev := "user,id=kiln0"
		for g, hp := range s.Meta.portMap() {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, g)
		}
		for _, f := range strings.Split(s.Meta.Listen, ",") {
			if g, addr, ok := strings.Cut(f, "="); ok {
				netdev += fmt.Sprintf(",hostfwd=tcp:%s-:%s", addr, g)
			}
		}
		d.QEMUCommandline = &libvirtxml.DomainQEMUCommandline{Args: []libvirtxml.DomainQEMUCommandlineArg{
			{Value: "-netdev"}, {Value: netdev}, {Value: "-device"}, {Value: "virtio-net-pci,netdev=kiln0,bus=pci.0,addr=0x1f"},
		}}
	}
	return d.Marshal()
}

// Start starts a stopped instance.
func (h *Libvirt) Start(ctx context.Context, name string) error {
	d, err := h.conn.DomainLookupByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.uri, name, err)
	}
	return h.conn.DomainCreate(d)
}

// Restart stops and starts an instance (a cold restart: a TCG guest may
// ignore ACPI for long).
func (h *Libvirt) Restart(ctx context.Context, name string) error {
	d, err := h.conn.DomainLookupByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.uri, name, err)
	}
	if state, _, err := h.conn.DomainGetState(d, 0); err == nil && stateOf(libvirt.DomainState(state)) != Stopped {
		// Running, paused or crashed: a new QEMU process either way.
		if err := h.conn.DomainDestroy(d); err != nil {
			return fmt.Errorf("%s: stop %s: %w", h.uri, name, err)
		}
	}
	return h.conn.DomainCreate(d)
}

// Protect rewrites kiln's metadata element of the domain with the
// protection, in its persistent definition and, when it runs, live.
func (h *Libvirt) Protect(ctx context.Context, name string, p Protection) error {
	d, err := h.conn.DomainLookupByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.uri, name, err)
	}
	raw, err := h.conn.DomainGetMetadata(d, int32(libvirt.DomainMetadataElement), libvirt.OptString{MetadataNamespace}, libvirt.DomainAffectConfig)
	if err != nil {
		return fmt.Errorf("%s: %s has no kiln metadata: %w", h.uri, name, err)
	}
	var m Metadata
	dec := xml.NewDecoder(strings.NewReader(raw))
	dec.DefaultSpace = MetadataNamespace
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %s: kiln metadata: %w", h.uri, name, err)
	}
	m.Protect = p.String()
	out, err := xml.Marshal(m)
	if err != nil {
		return err
	}
	flags := libvirt.DomainAffectConfig
	if state, _, err := h.conn.DomainGetState(d, 0); err == nil && stateOf(libvirt.DomainState(state)) != Stopped {
		flags |= libvirt.DomainAffectLive
	}
	if err := h.conn.DomainSetMetadata(d, int32(libvirt.DomainMetadataElement), libvirt.OptString{string(out)}, libvirt.OptString{"kiln"}, libvirt.OptString{MetadataNamespace}, flags); err != nil {
		return fmt.Errorf("%s: protect %s: %w", h.uri, name, err)
	}
	return nil
}

// Stats reads the domain's CPU time (all vCPUs) from libvirt.
func (h *Libvirt) Stats(ctx context.Context, name string) (Stats, error) {
	d, err := h.conn.DomainLookupByName(name)
	if err != nil {
		return Stats{}, fmt.Errorf("%s: %s: %w", h.uri, name, err)
	}
	_, _, _, vcpus, cpuTime, err := h.conn.DomainGetInfo(d)
	if err != nil {
		return Stats{}, fmt.Errorf("%s: stats of %s: %w", h.uri, name, err)
	}
	return Stats{CPUTime: time.Duration(cpuTime), VCPUs: int(vcpus)}, nil
}

// Delete removes an instance: its domain (stopped first) and its volumes.
// What is not there is skipped.
func (h *Libvirt) Delete(ctx context.Context, name string) error {
	d, err := h.conn.DomainLookupByName(name)
	switch {
	case err == nil:
		if state, _, err := h.conn.DomainGetState(d, 0); err == nil && stateOf(libvirt.DomainState(state)) != Stopped {
			h.conn.DomainDestroy(d)
		}
		if err := h.conn.DomainUndefineFlags(d, libvirt.DomainUndefineNvram); err != nil && !isNoDomain(err) {
			return fmt.Errorf("%s: undefine %s: %w", h.uri, name, err)
		}
	case !isNoDomain(err):
		return fmt.Errorf("%s: %s: %w", h.uri, name, err)
	}
	p, err := h.conn.StoragePoolLookupByName(h.opts.Pool)
	if isNoStoragePool(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, v := range []string{overlayVolume(name), seedVolume(name), consoleVolume(name)} {
		vol, err := h.conn.StorageVolLookupByName(p, v)
		if isNoVolume(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := h.conn.StorageVolDelete(vol, 0); err != nil && !isNoVolume(err) {
			return fmt.Errorf("%s: delete volume %s: %w", h.uri, v, err)
		}
	}
	return nil
}

// Console writes the instance's serial log from byte offset on to w, and
// returns the offset after what it wrote: called again with it, it writes
// what the guest printed since. The log is a volume of kiln's pool, read
// over libvirt's protocol, so it works for remote hosts too.
func (h *Libvirt) Console(ctx context.Context, name string, offset int64, w io.Writer) (int64, error) {
	p, err := h.conn.StoragePoolLookupByName(h.opts.Pool)
	if isNoStoragePool(err) {
		return offset, fmt.Errorf("%s: no instance %s (no storage pool %s)", h.uri, name, h.opts.Pool)
	}
	if err != nil {
		return offset, err
	}
	v, err := h.conn.StorageVolLookupByName(p, consoleVolume(name))
	if isNoVolume(err) {
		return offset, fmt.Errorf("%s: instance %s has no console log: it does not exist, or a kiln older than its console volume made it", h.uri, name)
	}
	if err != nil {
		return offset, err
	}
	// Its size now (libvirt looks at the file for this), and exactly the
	// bytes up to it, as QEMU may be appending.
	_, size, _, err := h.conn.StorageVolGetInfo(v)
	if err != nil {
		return offset, fmt.Errorf("%s: console of %s: %w", h.uri, name, err)
	}
	if int64(size) <= offset {
		return offset, nil
	}
	n, err := h.download(ctx, v, offset, int64(size)-offset, w)
	if err != nil {
		return offset + n, fmt.Errorf("%s: read console of %s: %w", h.uri, name, err)
	}
	return offset + n, nil
}

// download writes length bytes of a volume from offset to w. go-libvirt
// (at the version kiln uses) reads libvirt 9's download streams unreliably:
// it takes an empty data packet, which libvirt also sends mid-stream, for
// the stream's end, so a call can return early with part of the bytes; and
// when a packet follows that one at once, its reader blocks handing it to
// the call, which waits for the reader's lock: the call never returns. So
// each try runs on a connection of its own, a try that makes no progress
// for a second is given up (its connection left to the end of the process
// rather than closed: closing wants the same lock), and tries go on from
// where the last stopped until every byte has arrived.
func (h *Libvirt) download(ctx context.Context, v libvirt.StorageVol, offset, length int64, w io.Writer) (int64, error) {
	var got int64
	for idle := 0; got < length; {
		n, err := h.downloadTry(ctx, v, offset+got, length-got, w)
		got += n
		if err != nil {
			return got, err
		}
		if idle++; n > 0 {
			idle = 0
		} else if idle == 3 {
			return got, fmt.Errorf("the download stalled at byte %d of %d", offset+got, offset+length)
		}
	}
	return got, nil
}

// downloadTry is one try of download: it returns when the call does, or
// when no byte has come for a second.
func (h *Libvirt) downloadTry(ctx context.Context, v libvirt.StorageVol, offset, length int64, w io.Writer) (int64, error) {
	u, err := url.Parse(h.uri)
	if err != nil {
		return 0, err
	}
	conn, err := libvirt.ConnectToURI(u)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	done := make(chan error, 1)
	go func() { done <- conn.StorageVolDownload(v, cw, uint64(offset), uint64(length), 0) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case err := <-done:
			conn.Disconnect()
			return cw.stop(), err
		case <-ctx.Done():
			return cw.stop(), ctx.Err()
		case now := <-tick.C:
			if n := cw.written(); n != last {
				last, lastAt = n, now
			} else if now.Sub(lastAt) > time.Second {
				return cw.stop(), nil // wedged, see download
			}
		}
	}
}

// countingWriter counts what it passes on, while another goroutine may
// read the count; once stopped it passes nothing on, so a call given up
// never writes to w after download has returned.
type countingWriter struct {
	w       io.Writer
	n       atomic.Int64
	mu      sync.Mutex
	stopped bool
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return 0, errors.New("download given up")
	}
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) written() int64 { return c.n.Load() }

// stop ends the writes and returns how many bytes went through.
func (c *countingWriter) stop() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return c.n.Load()
}
