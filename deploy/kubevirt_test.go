package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kiln-project/kiln/recipes"
)

// kubeVirtFleet writes a fleet of two sets in a workdir and loads it:
//
//	web  ScaleSet of 3 from a local uefi image, 2 vCPUs, 1GiB, ports 8080
//	     and 22; its recipe names hosts web-{index} and writes a secret
//	     from KV_TOKEN
//	db   AvailabilitySet of 2 from a registry image, firmware bios
//	     written, a libvirt network (no ports); its recipe configures the
//	     network, so its Secrets carry network-config too
func kubeVirtFleet(t *testing.T) *Fleet {
	t.Helper()
	workdir(t)
	t.Setenv("KV_TOKEN", "token-for-test")
	write(t, "kv.yaml", `apiVersion: kiln/v1
kind: Recipe
name: kv
boot:
  hostname: "web-{index}"
  files:
    - {path: /etc/app/token, secret: env:KV_TOKEN}
`)
	write(t, "kvnet.yaml", `apiVersion: kiln/v1
kind: Recipe
name: kvnet
boot:
  network:
    ethernets:
      eth0: {dhcp4: true}
`)
	write(t, "fleet.yaml", `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./uefi.qcow2
recipe: ./kv.yaml
capacity: 3
size: {vcpus: 2, memory: 1GiB}
network: {ports: [8080, 22]}
updateDomains: 2
---
apiVersion: kiln/v1
kind: AvailabilitySet
name: db
image: oci://registry.example.com/team/db:1.2
firmware: bios
recipe: ./kvnet.yaml
capacity: 2
network: {mode: network, name: default}
`)
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var kubeVirtDisks = map[string]string{
	"web": "oci://registry.example.com/team/web-kubevirt:1.2",
	"db":  "registry.example.com/team/db-kubevirt@sha256:" + strings.Repeat("cd", 32),
}

// decodeKubeVirt splits an export into its documents and decodes each
// strictly into the type its kind names: a field KubeVirt or Kubernetes
// does not know fails the test.
func decodeKubeVirt(t *testing.T, out []byte) []any {
	t.Helper()
	var objs []any
	for i, doc := range strings.Split(string(out), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "pool.kubevirt.io/v1alpha1 VirtualMachinePool":
			obj = &poolv1.VirtualMachinePool{}
		case "v1 Secret":
			obj = &corev1.Secret{}
		default:
			t.Fatalf("document %d: unexpected %s %s\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v\n%s", i, tm.Kind, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestKubeVirt(t *testing.T) {
	f := kubeVirtFleet(t)
	exp, err := KubeVirt(f, KubeVirtOptions{ContainerDisks: kubeVirtDisks})
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeKubeVirt(t, exp.YAML)
	// Per set in file order: the pool, then its Secrets by ordinal.
	var order []string
	for _, o := range objs {
		switch o := o.(type) {
		case *poolv1.VirtualMachinePool:
			order = append(order, "pool/"+o.Name)
		case *corev1.Secret:
			order = append(order, "secret/"+o.Name)
		}
	}
	want := []string{"pool/web", "secret/web-cloudinit-0", "secret/web-cloudinit-1", "secret/web-cloudinit-2",
		"pool/db", "secret/db-cloudinit-0", "secret/db-cloudinit-1"}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("documents %v, want %v", order, want)
	}
	if !reflect.DeepEqual(exp.Pools, []string{"web", "db"}) || len(exp.Secrets) != 5 || exp.Secrets[4] != "db-cloudinit-1" || !exp.HoldsSecrets {
		t.Errorf("export: pools %v, secrets %v, holds secrets %v", exp.Pools, exp.Secrets, exp.HoldsSecrets)
	}

	web := objs[0].(*poolv1.VirtualMachinePool)
	if *web.Spec.Replicas != 3 {
		t.Errorf("web replicas %d, want 3", *web.Spec.Replicas)
	}
	sel := map[string]string{"kiln.dev/set": "web"}
	vm := web.Spec.VirtualMachineTemplate
	if !reflect.DeepEqual(web.Spec.Selector.MatchLabels, sel) || !reflect.DeepEqual(vm.ObjectMeta.Labels, sel) || !reflect.DeepEqual(vm.Spec.Template.ObjectMeta.Labels, sel) {
		t.Errorf("selector %v, VM labels %v, VMI labels %v: want %v on each", web.Spec.Selector.MatchLabels, vm.ObjectMeta.Labels, vm.Spec.Template.ObjectMeta.Labels, sel)
	}
	if a := web.Annotations; a["kiln.dev/kind"] != "ScaleSet" || a["kiln.dev/fault-domains"] != "1" || a["kiln.dev/update-domains"] != "2" {
		t.Errorf("web annotations %v", a)
	}
	if rs := vm.Spec.RunStrategy; rs == nil || *rs != virtv1.RunStrategyAlways {
		t.Errorf("runStrategy %v, want Always", rs)
	}
	// Secret refs get the VM's index: VM web-n reads web-cloudinit-n.
	if ng := web.Spec.NameGeneration; ng == nil || ng.AppendIndexToSecretRefs == nil || !*ng.AppendIndexToSecretRefs {
		t.Errorf("nameGeneration %+v: want appendIndexToSecretRefs", ng)
	}
	if si := web.Spec.ScaleInStrategy; si == nil || si.Proactive == nil || *si.Proactive.SelectionPolicy.SortPolicy != poolv1.VirtualMachinePoolSortPolicyDescendingOrder {
		t.Errorf("scaleInStrategy %+v: want the highest ordinal removed first", si)
	}
	vmi := vm.Spec.Template.Spec
	d := vmi.Domain
	if d.CPU == nil || d.CPU.Cores != 2 || d.Memory == nil || d.Memory.Guest.String() != "1Gi" {
		t.Errorf("cpu %+v, memory %+v: want 2 cores, 1Gi", d.CPU, d.Memory)
	}
	if d.Firmware == nil || d.Firmware.Bootloader == nil || d.Firmware.Bootloader.EFI == nil || d.Firmware.Bootloader.EFI.SecureBoot == nil || *d.Firmware.Bootloader.EFI.SecureBoot {
		t.Errorf("firmware %+v: want EFI without Secure Boot", d.Firmware)
	}
	vols := map[string]virtv1.VolumeSource{}
	for _, v := range vmi.Volumes {
		vols[v.Name] = v.VolumeSource
	}
	for _, disk := range d.Devices.Disks {
		if _, ok := vols[disk.Name]; !ok || disk.Disk == nil || disk.Disk.Bus != virtv1.DiskBusVirtio {
			t.Errorf("disk %+v: want a virtio disk with its volume", disk)
		}
	}
	if cd := vols["containerdisk"].ContainerDisk; cd == nil || cd.Image != "registry.example.com/team/web-kubevirt:1.2" {
		t.Errorf("containerDisk %+v: want the reference without its scheme", cd)
	}
	ci := vols["cloudinitdisk"].CloudInitNoCloud
	if ci == nil || ci.UserDataSecretRef == nil || ci.UserDataSecretRef.Name != "web-cloudinit" || ci.NetworkDataSecretRef != nil || ci.UserData != "" {
		t.Fatalf("cloudInitNoCloud %+v: want only secretRef web-cloudinit", ci)
	}
	if len(d.Devices.Disks) != 2 || len(vmi.Volumes) != 2 {
		t.Errorf("disks %v, volumes %v", d.Devices.Disks, vmi.Volumes)
	}
	ifs := d.Devices.Interfaces
	if len(ifs) != 1 || ifs[0].Masquerade == nil || len(vmi.Networks) != 1 || vmi.Networks[0].Pod == nil || ifs[0].Name != vmi.Networks[0].Name {
		t.Fatalf("interfaces %+v, networks %+v: want one masquerade interface on the pod network", ifs, vmi.Networks)
	}
	var ports []int32
	for _, p := range ifs[0].Ports {
		ports = append(ports, p.Port)
	}
	if !reflect.DeepEqual(ports, []int32{8080, 22}) {
		t.Errorf("ports %v, want the set's, 8080 and 22", ports)
	}

	for n := range 3 {
		s := objs[1+n].(*corev1.Secret)
		if s.Name != ci.UserDataSecretRef.Name+fmt.Sprint("-", n) || s.Labels["kiln.dev/set"] != "web" || s.Type != corev1.SecretTypeOpaque {
			t.Errorf("secret %d: %s, labels %v, type %s", n, s.Name, s.Labels, s.Type)
		}
		ud := string(s.Data["userdata"])
		if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, fmt.Sprintf("hostname: web-%d\n", n)) || !strings.Contains(ud, "token-for-test") {
			t.Errorf("secret %s: user-data without its host name web-%d or the resolved secret:\n%s", s.Name, n, ud)
		}
		if _, ok := s.Data["networkdata"]; ok || len(s.Data) != 1 || len(s.StringData) != 0 {
			t.Errorf("secret %s: keys %v, want userdata only", s.Name, s.Data)
		}
	}

	db := objs[4].(*poolv1.VirtualMachinePool)
	dvmi := db.Spec.VirtualMachineTemplate.Spec.Template.Spec
	if *db.Spec.Replicas != 2 || db.Annotations["kiln.dev/kind"] != "AvailabilitySet" || db.Annotations["kiln.dev/fault-domains"] != "3" || db.Annotations["kiln.dev/update-domains"] != "5" {
		t.Errorf("db: replicas %d, annotations %v", *db.Spec.Replicas, db.Annotations)
	}
	if dd := dvmi.Domain; dd.Firmware != nil || dd.CPU.Cores != 1 || dd.Memory.Guest.String() != "512Mi" || len(dd.Devices.Interfaces[0].Ports) != 0 {
		t.Errorf("db: firmware %+v (bios is KubeVirt's default), cpu %+v, memory %v, ports %v", dd.Firmware, dd.CPU, dd.Memory.Guest, dd.Devices.Interfaces[0].Ports)
	}
	if cd := dvmi.Volumes[0].ContainerDisk; cd == nil || cd.Image != kubeVirtDisks["db"] {
		t.Errorf("db containerDisk %+v", cd)
	}
	if ci := dvmi.Volumes[1].CloudInitNoCloud; ci.NetworkDataSecretRef == nil || ci.NetworkDataSecretRef.Name != "db-cloudinit" {
		t.Errorf("db cloudInitNoCloud %+v: want networkDataSecretRef db-cloudinit", ci)
	}
	for n := range 2 {
		s := objs[5+n].(*corev1.Secret)
		if !strings.Contains(string(s.Data["userdata"]), fmt.Sprintf("hostname: db-%d\n", n)) || !strings.Contains(string(s.Data["networkdata"]), "dhcp4: true") {
			t.Errorf("secret %s: %s\n%s", s.Name, s.Data["userdata"], s.Data["networkdata"])
		}
	}
}

// The same fleet exports the same bytes: the file can be kept in git
// and diffed.
func TestKubeVirtDeterministic(t *testing.T) {
	f := kubeVirtFleet(t)
	a, err := KubeVirt(f, KubeVirtOptions{ContainerDisks: kubeVirtDisks})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := KubeVirt(f2, KubeVirtOptions{ContainerDisks: kubeVirtDisks})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.YAML, b.YAML) {
		t.Errorf("two exports differ:\n%s\n---- and ----\n%s", a.YAML, b.YAML)
	}
}

func TestKubeVirtContainerDiskErrors(t *testing.T) {
	f := kubeVirtFleet(t)
	for _, c := range []struct {
		name  string
		disks map[string]string
		want  []string
	}{
		{"missing", map[string]string{"web": kubeVirtDisks["web"]},
			[]string{"set db has no containerDisk", "kiln push IMAGE REGISTRY/REPO:TAG --format containerdisk", "--containerdisk db=REGISTRY/REPO:TAG"}},
		{"none", nil, []string{"set web has no containerDisk", "set db has no containerDisk"}},
		{"unknown set", map[string]string{"web": kubeVirtDisks["web"], "db": kubeVirtDisks["db"], "wbe": kubeVirtDisks["web"]},
			[]string{`containerDisk for set "wbe": fleet.yaml has no such set (its sets: web, db)`}},
		{"no registry host", map[string]string{"web": "web-kubevirt:1.2", "db": kubeVirtDisks["db"]},
			[]string{`containerDisk of set web: invalid reference "web-kubevirt:1.2": no registry host`}},
		{"bad scheme", map[string]string{"web": "ftp://registry.example.com/web:1", "db": kubeVirtDisks["db"]},
			[]string{`containerDisk of set web: invalid reference "ftp://registry.example.com/web:1": unknown scheme`}},
		{"layout", map[string]string{"web": "oci:store:web", "db": kubeVirtDisks["db"]},
			[]string{`"oci:store:web" is an OCI layout directory, which a cluster cannot pull`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			exp, err := KubeVirt(f, KubeVirtOptions{ContainerDisks: c.disks})
			var cde *ContainerDiskError
			if err == nil || !errors.As(err, &cde) || exp != nil {
				t.Fatalf("got %v, %v: want a ContainerDiskError", exp, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A registry image's firmware is in its manifest, which export does not
// pull: the set must say it, and the error is placed in the fleet file.
func TestKubeVirtRegistryImageFirmware(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", header+"kind: ScaleSet\nname: web\nimage: oci://registry.example.com/team/web:1.2\nrecipe: web.yaml\n")
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = KubeVirt(f, KubeVirtOptions{ContainerDisks: map[string]string{"web": "registry.example.com/team/web-kubevirt:1.2"}})
	var el recipes.ErrorList
	if !errors.As(err, &el) || len(el) != 1 || el[0].Pos.String() != "fleet.yaml:1:1" || !strings.Contains(el[0].Msg, "write firmware: bios or firmware: uefi") {
		t.Fatalf("got %v", err)
	}
}

// A recipe secret that is not there fails the export, naming it.
func TestKubeVirtMissingSecret(t *testing.T) {
	f := kubeVirtFleet(t)
	os.Unsetenv("KV_TOKEN") // t.Setenv restores it
	if _, err := KubeVirt(f, KubeVirtOptions{ContainerDisks: kubeVirtDisks}); err == nil || !strings.Contains(err.Error(), "KV_TOKEN") {
		t.Fatalf("got %v, want an error naming KV_TOKEN", err)
	}
}
