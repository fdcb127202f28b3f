// Package cloudinit models the three NoCloud documents kiln writes for an
// instance — cloud-config user-data, meta-data and network-config v2 — renders
// them to bytes, and validates them against cloud-init's own JSON schemas,
// embedded from the cloud-init packages (see schemas/README.md).
//
// It is a leaf: it knows nothing of recipes. Callers build a Config, render it
// with Render, and check it with Validate; problems carry a JSON pointer into
// the rendered document so the caller can map them back to its own sources.
package cloudinit
