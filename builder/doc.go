// Package builder turns compiled recipes into artifacts: NoCloud seeds now,
// golden images as the bake pipeline grows. It is the only library package
// that pairs recipes with the format packages (iso, disk, registry), so those
// stay recipe-free.
package builder
