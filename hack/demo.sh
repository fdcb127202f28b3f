#!/bin/sh
# kiln's main job on its embedded defaults: take the app-host example recipe,
# validate it, render one instance's cloud-init documents and write its NoCloud
# seed image. Everything lands in _output/demo/.
set -eu
cd "$(dirname "$0")/.."
kiln=_output/bin/kiln
out=_output/demo
recipe=examples/app-host.yaml
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*"; }

step "kiln recipe validate $recipe"
$kiln recipe validate "$recipe"

step "kiln render $recipe --instance hello-1 --index 1 -o $out/seed"
$kiln render "$recipe" --instance hello-1 --index 1 -o "$out/seed"

step "kiln seed $recipe --instance hello-1 --index 1 -o $out/seed.iso"
$kiln seed "$recipe" --instance hello-1 --index 1 -o "$out/seed.iso"

step "what a guest sees"
blkid -p -o export "$out/seed.iso" | grep -E '^(LABEL|TYPE)='
isoinfo -R -l -i "$out/seed.iso" | grep -E '^-' || true
echo
echo "Boot any cloud-init image with $out/seed.iso attached as a CD-ROM or disk."
