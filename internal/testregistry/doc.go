// Package testregistry runs real OCI registries for kiln's integration
// tests: the Debian docker-registry (distribution 2.8) on 127.0.0.1, with a
// config, storage and log of its own in the test's temp dir, and a
// [FaultProxy] in front of it that breaks chosen requests a limited number
// of times, so that retries and resumed pulls and pushes can be tested
// against the real protocol.
//
//	client ──► FaultProxy (127.0.0.1:P1) ──► docker-registry (127.0.0.1:P2)
//	             Status: answers Code itself              │
//	             DropRequest: resets before forwarding    ▼
//	             DropAfter/Truncate: cuts the body      Dir/docker/registry/v2/...
//
// A test calls testutil.Integration first (so -short skips it), then
// [Start]; Start needs docker-registry (testutil.NeedTool: a skip on a
// laptop, a failure under CI=true). Everything started is stopped in
// t.Cleanup.
//
// The packaged /etc/docker/registry/config.yml is never used: it listens on
// every interface.
package testregistry
