// Package testregistry runs real OCI registries for kiln's integration
// tests: the Debian docker-registry (distribution 2.8) on 127.0.0.1, with a
// config, storage and log of its own in the test's temp dir.
//
// A test calls testutil.Integration first (so -short skips it), then
// [Start]; Start needs docker-registry (testutil.NeedTool: a skip on a
// laptop, a failure under CI=true). Everything started is stopped in
// t.Cleanup.
//
// The packaged /etc/docker/registry/config.yml is never used: it listens on
// every interface.
package testregistry
