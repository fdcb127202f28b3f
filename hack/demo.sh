#!/bin/sh
# kiln's main job on its embedded defaults: take the app-host example recipe
# (a package-built Debian base, no download of a cloud image), bake its
# golden image, lint it, and boot it with kiln test — under the firmware the
# recipe lists — with an instance seed, checking the app answers — then
# publish it, signed, to the embedded OCI layout store and pull it back
# verified. Everything lands in _output/demo/.
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

echo
echo "Golden image: $out/app-host.qcow2 (manifest: $out/app-host.manifest.json)"
echo "Seed for instance hello-1: $out/hello-1.iso"
echo "Published, signed: oci:$out/store:app-host (public key: $out/demo.pub)"
