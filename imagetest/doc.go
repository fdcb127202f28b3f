// Package imagetest proves an image works: what `kiln test` does. It boots
// the image (through internal boot machinery, never writing the image)
// with an instance seed — the recipe's own when it is known, so roles
// configured at first boot are configured — under each firmware; logs in
// with an ephemeral key; requires cloud-init to finish cleanly, the seed's
// host name and users to exist; runs the checks of the recipe and its
// roles; and powers the guest off.
//
// A test is a list of named steps over a typed state (see steps.go), like
// the bake pipeline: each step reports progress and its own error context.
//
// It sits beside the bake pipeline, not in it: the CLI bakes first, then
// tests; registries, fleets and the Packer plugin test images they did not
// bake.
package imagetest
