// Package testlibvirt runs real libvirt daemons for kiln's deploy tests.
package testlibvirt
