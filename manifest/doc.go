// Package manifest is the image manifest: the JSON file beside every image
// kiln bakes (web.qcow2 -> web.manifest.json), and the contract the
// registry, deploy and Packer code read. It says what went in (recipe,
// base, packages), what came out (the disk and its digest) and what a
// running instance must pass (checks).
//
// The layout is versioned by schemaVersion and described by a JSON Schema
// embedded here (schema/manifest-v1.json) and by docs/manifest.md. Every
// key is camelCase, every duration a string ("2m", "1m30s"), every list
// present ([] when empty). Write validates against the schema, so a
// manifest kiln writes always passes it.
//
// Read accepts the current layout and the one before it (kiln 0.x
// manifests without schemaVersion, whose checks used Go field names and
// nanosecond timeouts), which it converts; anything newer is refused with
// a message that names the kiln needed.
//
// This package imports nothing else of kiln but internal helpers: a
// registry, a fleet or a Packer plugin can read manifests without the bake
// pipeline.
package manifest
