#!/bin/sh
# kiln's main job on its embedded defaults: take the app-host example recipe
# (a package-built Debian base, no download of a cloud image), bake its
# golden image, lint it, and boot it with kiln test — under the firmware the
# recipe lists — with an instance seed, checking the app answers — then
# publish it, signed, to the embedded OCI layout store and pull it back
# verified; then run a small fleet of it on this machine's libvirt (started
# when it is not running), from the published image, and draw it.
# Everything lands in _output/demo/; the fleet keeps running
# (kiln deploy destroy _output/demo/fleet.yaml hello removes it).
set -eu
cd "$(dirname "$0")/.."
kiln=$PWD/_output/bin/kiln
out=_output/demo
recipe=examples/app-host.yaml
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*"; }

step "kiln recipe validate $recipe"
$kiln recipe validate "$recipe"

step "kiln bake $recipe -o $out/app-host.qcow2"
$kiln bake "$recipe" -o "$out/app-host.qcow2"

step "kiln lint $out/app-host.qcow2"
$kiln lint "$out/app-host.qcow2"

step "kiln seed $recipe --instance hello-1 --index 1 -o $out/hello-1.iso"
$kiln seed "$recipe" --instance hello-1 --index 1 -o "$out/hello-1.iso"

step "kiln test $out/app-host.qcow2 (boots it under QEMU: a minute or two per firmware)"
$kiln test "$out/app-host.qcow2"

if [ ! -f "$out/demo.key" ]; then
	step "kiln key generate --out $out/demo"
	KILN_KEY_PASSPHRASE= $kiln key generate --out "$out/demo"
fi

step "kiln push $out/app-host.qcow2 oci:$out/store:app-host --sign $out/demo.key"
KILN_KEY_PASSPHRASE= $kiln push "$out/app-host.qcow2" "oci:$out/store:app-host" --sign "$out/demo.key"

step "kiln inspect oci:$out/store:app-host"
$kiln inspect "oci:$out/store:app-host"

step "kiln pull oci:$out/store:app-host --verify $out/demo.pub -o $out/pulled/app-host.qcow2"
mkdir -p "$out/pulled"
$kiln pull "oci:$out/store:app-host" --verify "$out/demo.pub" -o "$out/pulled/app-host.qcow2"

if ! virsh -c qemu:///system version >/dev/null 2>&1; then
	step "starting libvirt (virtlogd -d && libvirtd -d)"
	virtlogd -d && libvirtd -d
	i=0
	until virsh -c qemu:///system version >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 60 ] || { echo "libvirtd did not answer within 60 s" >&2; exit 1; }
		sleep 1
	done
fi

cat >"$out/fleet.yaml" <<EOF
# A scale set of two instances of the image published above, on this
# machine's libvirt, each answering on a 127.0.0.1 port (kiln deploy status).
apiVersion: kiln/v1
kind: ScaleSet
name: hello
image: oci:store:app-host
recipe: ../../$recipe
capacity: 2
size: {memory: 512MiB}
EOF

step "kiln deploy apply $out/fleet.yaml"
$kiln deploy apply "$out/fleet.yaml"

step "waiting for the instances to answer (they boot under QEMU: a few minutes)"
i=0
for port in $($kiln deploy status "$out/fleet.yaml" --output json | tr -d ' \n' | grep -o '"ports":{"8080":[0-9]*' | grep -o '[0-9]*$'); do
	until curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 300 ] || { echo "no answer on 127.0.0.1:$port; see kiln deploy console $out/fleet.yaml hello/0" >&2; exit 1; }
		sleep 2
	done
	echo "127.0.0.1:$port answers: $(curl -fsS "http://127.0.0.1:$port/")"
done

step "kiln deploy status $out/fleet.yaml"
$kiln deploy status "$out/fleet.yaml"

step "kiln deploy graph $out/fleet.yaml --live --format svg -o $out/fleet.svg"
$kiln deploy graph "$out/fleet.yaml" --live --format svg -o "$out/fleet.svg"

echo
echo "Golden image: $out/app-host.qcow2 (manifest: $out/app-host.manifest.json)"
echo "Seed for instance hello-1: $out/hello-1.iso"
echo "Published, signed: oci:$out/store:app-host (public key: $out/demo.pub)"
echo "Running: the fleet of $out/fleet.yaml (drawn in $out/fleet.svg); kiln deploy destroy $out/fleet.yaml hello removes it"
