// Package builder is the bake pipeline: it turns a compiled recipe into a
// golden image and its manifest, and nothing else.
//
//	debian:<suite> base                      image base (file, URL)
//	  base     mmdebstrap, cached              vet: qcow2/raw, no backing file
//	  bake     the bake section, offline       boot once with a bake seed
//	           in the tree (chroot)            (boot), cloud-init applies it,
//	  sysprep  clean clones                    the guest cleans itself
//	  assemble GPT, BIOS + UEFI GRUB, ext4     convert: flatten + compress
//	  convert  qcow2 (zstd) or raw
//	  lint     kiln's own hygiene rules, on both
//	  manifest manifest.json (package manifest)
//
// Finished images live in a content-addressed cache (cache.go) keyed by
// everything that shapes them, and are copied to the output atomically.
// Testing an image is not the pipeline's job: package imagetest does that,
// on the boot machinery in package boot that VM bakes share; seeds are
// package seed's, manifests package manifest's.
package builder
