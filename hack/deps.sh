#!/bin/sh
# Installs what kiln's build, demo and tests need on Debian 12: apt packages
# and Go modules. Idempotent and quiet when everything is there already.
set -eu

# Every tool the tests drive for real (see docs/development.md).
PACKAGES="
ca-certificates
curl
file
postgresql-client
procps
tar
util-linux
chromium
cloud-image-utils
cloud-init
dnsmasq-base
docker-registry
dosfstools
dpkg-dev
e2fsprogs
fdisk
gdisk
genisoimage
gpg
gpgconf
graphviz
grub-efi-amd64-bin
grub-pc-bin
grub2-common
haproxy
iproute2
iptables
libvirt-clients
libvirt-daemon-system
mmdebstrap
mtools
ovmf
qemu-system-x86
qemu-utils
skopeo
systemd
xorriso
zip
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	# Services must not start during installation (there may be no init).
	# libvirt-daemon-system's postinst starts libvirtd and virtlogd only
	# through systemd (when /run/systemd/system exists), so without systemd
	# as PID 1 nothing is left running; internal/testlibvirt runs daemons of
	# its own in mount namespaces either way.
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

command -v go >/dev/null 2>&1 || { echo "deps: Go is not installed (want the version in go.mod)" >&2; exit 1; }
go mod download
# The Packer plugin is a module of its own (cmd/packer-plugin-kiln).
(cd "$(dirname "$0")/../cmd/packer-plugin-kiln" && go mod download)
