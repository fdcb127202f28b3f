package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
)

// Labels and annotations kiln puts on what it exports to Kubernetes. A
// label key needs a DNS prefix; kiln.dev is kiln's.
const (
	// LabelSet names the set on its pool, the pool's VMs and their pods,
	// and the set's Secrets: kubectl get vm -l kiln.dev/set=web.
	LabelSet = "kiln.dev/set"
	// AnnotationKind, AnnotationFaultDomains and AnnotationUpdateDomains
	// keep on the pool what KubeVirt has no notion of.
	AnnotationKind          = "kiln.dev/kind"
	AnnotationFaultDomains  = "kiln.dev/fault-domains"
	AnnotationUpdateDomains = "kiln.dev/update-domains"
)

// KubeVirtOptions are what a fleet file does not say about a KubeVirt
// export.
type KubeVirtOptions struct {
	// ContainerDisks maps each set's name to the KubeVirt containerDisk its
	// instances boot: a registry reference (oci:// or docker:// accepted)
	// that kiln push IMAGE REF --format containerdisk wrote. Every set needs
	// one: a set's image is a kiln image, which KubeVirt cannot boot.
	ContainerDisks map[string]string
}

// KubeVirtExport is a fleet as KubeVirt objects.
type KubeVirtExport struct {
	// YAML is the documents, separated by "---": per set in file order its
	// VirtualMachinePool, then its Secrets by ordinal.
	YAML []byte
	// Pools and Secrets name the objects in YAML, in order.
	Pools   []string
	Secrets []string
	// HoldsSecrets is true when a secret of a recipe (env:, file:) was
	// resolved into a Secret; the Secrets hold user-data either way.
	HoldsSecrets bool
}

// ContainerDiskError is a set's containerDisk that is missing, names no
// set, or is not a registry reference: a problem in the options, not in the
// fleet file.
type ContainerDiskError struct {
	Set string
	Ref string // "" when missing
	Msg string
}

func (e *ContainerDiskError) Error() string { return e.Msg }

// KubeVirt exports a loaded fleet to KubeVirt: per set one
// VirtualMachinePool (pool.kubevirt.io/v1alpha1) of capacity VMs and one
// Secret per instance holding its cloud-init user-data (and
// network-config), the same documents deploy seeds on libvirt. It reads the
// fleet alone: no image is pulled, nothing touches the network. Secrets of
// the recipes are resolved from the environment and files here.
//
// What is kept and what is not (docs/deploy.md, "Moving to Kubernetes"):
//   - VM n of pool web is web-n, from 0, the lowest free number first, like
//     kiln's ordinals; nameGeneration.appendIndexToSecretRefs makes its
//     cloud-init Secret web-cloudinit-n. Scale-in removes the highest
//     first (DescendingOrder), so ordinals stay 0..n-1 and every VM has its
//     Secret; more replicas than exported have none (export again).
//   - size is cores and guest memory; size.disk does not apply (a
//     containerDisk is ephemeral, as big as its image).
//   - firmware bios is KubeVirt's default; uefi is EFI without Secure Boot,
//     as kiln boots it. A registry image's firmware is known only from its
//     manifest, which is not read here: such a set must write firmware.
//   - the network is the pod network (masquerade) with the set's ports
//     declared (none declared: every port is forwarded).
//   - fault and update domains and hosts have no KubeVirt equivalent:
//     KubeVirt schedules VMs on nodes. The counts are kept as annotations.
func KubeVirt(f *Fleet, opts KubeVirtOptions) (*KubeVirtExport, error) {
	disks, err := containerDisks(f, opts.ContainerDisks)
	if err != nil {
		return nil, err
	}
	var errs recipes.ErrorList
	for _, s := range f.Sets {
		if s.Firmware == "" {
			errs = append(errs, &recipes.Error{Pos: s.Position("firmware"), Path: "firmware",
				Msg: fmt.Sprintf("set %s: the firmware of registry image %s is in its manifest, which export does not pull; write firmware: bios or firmware: uefi (what kiln inspect shows for the image)", s.Name, s.Image.Ref)})
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	out := &KubeVirtExport{}
	var docs [][]byte
	add := func(obj any) error {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		docs = append(docs, b)
		return nil
	}
	for _, s := range f.Sets {
		if err := add(kubeVirtPool(s, disks[s.Name])); err != nil {
			return nil, err
		}
		out.Pools = append(out.Pools, s.Name)
		for _, p := range s.Placements() {
			sd, err := s.Recipe.Seed(recipes.Instance{Name: p.Name, Index: p.Ordinal}, recipes.StageBoot, s.Recipe.Recipe.EnvResolver())
			if err != nil {
				return nil, err
			}
			sec := cloudInitSecret(s, p.Ordinal, sd)
			if err := add(sec); err != nil {
				return nil, err
			}
			out.Secrets = append(out.Secrets, sec.Name)
			out.HoldsSecrets = out.HoldsSecrets || sd.HoldsSecrets
		}
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# KubeVirt objects of %s, made by kiln deploy export.\n# The Secrets hold each instance's cloud-init user-data: keep this file private.\n", f.File)
	for i, d := range docs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(d)
	}
	out.YAML = buf.Bytes()
	return out, nil
}

// containerDisks checks the options' containerDisks against the fleet and
// returns each set's image as KubeVirt takes it: REGISTRY/REPO:TAG or
// @sha256:..., without a scheme.
func containerDisks(f *Fleet, refs map[string]string) (map[string]string, error) {
	var errs []error
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	slices.Sort(names)
	var sets []string
	for _, s := range f.Sets {
		sets = append(sets, s.Name)
	}
	out := map[string]string{}
	for _, name := range names {
		ref := refs[name]
		if f.Set(name) == nil {
			errs = append(errs, &ContainerDiskError{Set: name, Ref: ref,
				Msg: fmt.Sprintf("containerDisk for set %q: %s has no such set (its sets: %s)", name, f.File, strings.Join(sets, ", "))})
			continue
		}
		r, err := registry.ParseRef(ref)
		var re *registry.RefError
		switch {
		case errors.As(err, &re):
			errs = append(errs, &ContainerDiskError{Set: name, Ref: ref, Msg: fmt.Sprintf("containerDisk of set %s: invalid reference %q: %s", name, ref, re.Msg)})
		case err != nil:
			errs = append(errs, &ContainerDiskError{Set: name, Ref: ref, Msg: fmt.Sprintf("containerDisk of set %s: %v", name, err)})
		case r.IsLayout():
			errs = append(errs, &ContainerDiskError{Set: name, Ref: ref,
				Msg: fmt.Sprintf("containerDisk of set %s: %q is an OCI layout directory, which a cluster cannot pull; push it to a registry (kiln push IMAGE REGISTRY/REPO:TAG --format containerdisk)", name, ref)})
		default:
			out[name] = r.Remote.Name()
		}
	}
	for _, s := range f.Sets {
		if _, given := refs[s.Name]; !given {
			errs = append(errs, &ContainerDiskError{Set: s.Name,
				Msg: fmt.Sprintf("set %s has no containerDisk: KubeVirt cannot boot a kiln image; push the set's image as one (kiln push IMAGE REGISTRY/REPO:TAG --format containerdisk) and name it with --containerdisk %s=REGISTRY/REPO:TAG", s.Name, s.Name)})
		}
	}
	return out, errors.Join(errs...)
}

// Names in the VM template.
const (
	kvRootDisk  = "containerdisk"
	kvCloudInit = "cloudinitdisk"
	kvNetwork   = "default"
)

// CloudInitSecretName is the Secret holding instance ordinal's cloud-init
// documents: web, 2 -> web-cloudinit-2. The pool's template names
// web-cloudinit, to which KubeVirt appends each VM's index.
func CloudInitSecretName(set string, ordinal int) string {
	return cloudInitSecretRef(set) + "-" + strconv.Itoa(ordinal)
}

func cloudInitSecretRef(set string) string { return set + "-cloudinit" }

func kubeVirtPool(s *Set, containerDisk string) *poolv1.VirtualMachinePool {
	labels := func() map[string]string { return map[string]string{LabelSet: s.Name} }
	var firmware *virtv1.Firmware
	if s.Firmware == "uefi" {
		// As kiln boots UEFI images: OVMF without Secure Boot keys.
		firmware = &virtv1.Firmware{Bootloader: &virtv1.Bootloader{EFI: &virtv1.EFI{SecureBoot: ptr(false)}}}
	}
	var ports []virtv1.Port
	for _, p := range s.Network.Ports {
		ports = append(ports, virtv1.Port{Port: int32(p)})
	}
	cloudInit := &virtv1.CloudInitNoCloudSource{UserDataSecretRef: &corev1.LocalObjectReference{Name: cloudInitSecretRef(s.Name)}}
	if s.Recipe.Boot.Network != nil {
		cloudInit.NetworkDataSecretRef = &corev1.LocalObjectReference{Name: cloudInitSecretRef(s.Name)}
	}
	virtio := virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}}
	memory := resource.NewQuantity(int64(s.Size.Memory), resource.BinarySI)
	descending := poolv1.VirtualMachinePoolSortPolicyDescendingOrder
	return &poolv1.VirtualMachinePool{
		TypeMeta: metav1.TypeMeta{APIVersion: poolv1.SchemeGroupVersion.String(), Kind: poolv1.VirtualMachinePoolKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:   s.Name,
			Labels: labels(),
			Annotations: map[string]string{
				AnnotationKind:          string(s.Kind),
				AnnotationFaultDomains:  strconv.Itoa(s.FaultDomains),
				AnnotationUpdateDomains: strconv.Itoa(s.UpdateDomains),
			},
		},
		Spec: poolv1.VirtualMachinePoolSpec{
			Replicas: ptr(int32(s.Capacity)),
			Selector: &metav1.LabelSelector{MatchLabels: labels()},
			// VM n gets Secret <set>-cloudinit-n.
			NameGeneration: &poolv1.VirtualMachinePoolNameGeneration{AppendIndexToSecretRefs: ptr(true)},
			// Like kiln, remove the highest ordinal first: the VMs left
			// are 0..n-1, each with its Secret.
			ScaleInStrategy: &poolv1.VirtualMachinePoolScaleInStrategy{Proactive: &poolv1.VirtualMachinePoolProactiveScaleInStrategy{
				SelectionPolicy: &poolv1.VirtualMachinePoolSelectionPolicy{SortPolicy: &descending},
			}},
			VirtualMachineTemplate: &poolv1.VirtualMachineTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels()},
				Spec: virtv1.VirtualMachineSpec{
					RunStrategy: ptr(virtv1.RunStrategyAlways),
					Template: &virtv1.VirtualMachineInstanceTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels()},
						Spec: virtv1.VirtualMachineInstanceSpec{
							Domain: virtv1.DomainSpec{
								CPU:      &virtv1.CPU{Cores: uint32(s.Size.VCPUs)},
								Memory:   &virtv1.Memory{Guest: memory},
								Firmware: firmware,
								Devices: virtv1.Devices{
									Disks: []virtv1.Disk{
										{Name: kvRootDisk, DiskDevice: virtio, BootOrder: ptr(uint(1))},
										{Name: kvCloudInit, DiskDevice: virtio},
									},
									Interfaces: []virtv1.Interface{{
										Name:                   kvNetwork,
										InterfaceBindingMethod: virtv1.InterfaceBindingMethod{Masquerade: &virtv1.InterfaceMasquerade{}},
										Ports:                  ports,
									}},
								},
							},
							Networks: []virtv1.Network{{Name: kvNetwork, NetworkSource: virtv1.NetworkSource{Pod: &virtv1.PodNetwork{}}}},
							Volumes: []virtv1.Volume{
								{Name: kvRootDisk, VolumeSource: virtv1.VolumeSource{ContainerDisk: &virtv1.ContainerDiskSource{Image: containerDisk}}},
								{Name: kvCloudInit, VolumeSource: virtv1.VolumeSource{CloudInitNoCloud: cloudInit}},
							},
						},
					},
				},
			},
		},
	}
}

// cloudInitSecret holds one instance's user-data and network-config under
// the keys KubeVirt reads. KubeVirt writes the meta-data itself
// (instance-id, and the VM's name as local-hostname); kiln's user-data sets
// the host name.
func cloudInitSecret(s *Set, ordinal int, sd *recipes.Seed) *corev1.Secret {
	data := map[string][]byte{"userdata": sd.UserData}
	if sd.NetworkConfig != nil {
		data["networkdata"] = sd.NetworkConfig
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: CloudInitSecretName(s.Name, ordinal), Labels: map[string]string{LabelSet: s.Name}},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

func ptr[T any](v T) *T { return &v }
