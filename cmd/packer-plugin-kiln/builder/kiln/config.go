//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc struct-markdown

package kiln

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/internal/recipe"
)

// Config is the kiln builder's configuration: the recipe to bake, what
// the template overrides of it, and where the image goes.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Path of the kiln recipe to bake (see docs/recipes.md). Recipe
	// problems are reported as in the kiln CLI, `file:line:col: path:
	// message`. Exactly one of `recipe` and `recipe_content` is required.
	Recipe string `mapstructure:"recipe"`
	// The recipe's YAML inline, e.g. `file("web.yaml")` or
	// `templatefile("web.yaml.tpl", { port = 8080 })`, which is how a
	// template passes variables into a recipe (recipes have no variables
	// of their own). Problems are placed at `recipe_content:LINE:COL`;
	// relative paths in it resolve against Packer's working directory.
	RecipeContent string `mapstructure:"recipe_content"`
	// Overrides the recipe's `base`, e.g. `debian:bookworm`.
	Base string `mapstructure:"base"`
	// Overrides the recipe's `disk.size`, e.g. `8GiB`.
	DiskSize string `mapstructure:"disk_size"`
	// Directory the image and its manifest are written to. It must not
	// exist unless `packer build -force` is given. Defaults to
	// `output-<build name>`.
	OutputDirectory string `mapstructure:"output_directory"`
	// File name of the image in `output_directory`; its manifest is
	// written beside it (`NAME.manifest.json`). Defaults to the recipe's
	// name with the disk format's extension, e.g. `web.qcow2`.
	ImageName string `mapstructure:"image_name"`
	// kiln's cache of bases, images and packages. Defaults to kiln's own
	// (`$XDG_CACHE_HOME/kiln`), so the CLI and Packer share it.
	CacheDir string `mapstructure:"cache_dir"`
	// Debian mirror for package bases. Defaults to the build host's apt
	// sources; the recipe's `bake.mirror` wins over it.
	Mirror string `mapstructure:"mirror"`
	// Rebuild the image even when an identical one is cached (bases and
	// packages are still reused).
	NoCache bool `mapstructure:"no_cache"`
	// How long a VM bake (image bases) may take. Defaults to `30m`.
	BakeTimeout time.Duration `mapstructure:"bake_timeout"`
	// Run `kiln test`'s checks on the baked image: boot it under QEMU once
	// per firmware with an instance seed and run the recipe's checks. A
	// failed check fails the build and leaves no artifact.
	Test bool `mapstructure:"test"`
	// Firmware to test under (`bios`, `uefi`). Defaults to the recipe's
	// `disk.firmware`.
	TestFirmware []string `mapstructure:"test_firmware"`
	// How long `test` waits for the guest to boot. Defaults to `5m`.
	TestBootTimeout time.Duration `mapstructure:"test_boot_timeout"`

	ctx interpolate.Context
}

// source is the recipe the configuration names, with its overrides.
func (c *Config) source() recipe.Source {
	return recipe.Source{Path: c.Recipe, Content: c.RecipeContent, Base: c.Base, DiskSize: c.DiskSize}
}

// Prepare decodes raws into c, fills defaults and checks everything that
// can be checked before a build, the recipe included.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		// A recipe may hold {{ }} of its own (a Jinja template in a file):
		// it is kiln's, never Packer's to interpolate.
		InterpolateFilter: &interpolate.RenderFilter{Exclude: []string{"recipe_content"}},
	}, raws...)
	if err != nil {
		return err
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
		if c.PackerBuildName == "" {
			c.OutputDirectory = "output-kiln"
		}
	}
	if c.CacheDir == "" {
		c.CacheDir = builder.DefaultCacheDir()
	}
	if c.BakeTimeout == 0 {
		c.BakeTimeout = builder.DefaultBakeTimeout
	}
	var errs []error
	if c.ImageName != "" && (filepath.Base(c.ImageName) != c.ImageName || c.ImageName == "." || c.ImageName == "..") {
		errs = append(errs, fmt.Errorf("image_name %q: a file name, without a directory (use output_directory)", c.ImageName))
	}
	for _, fw := range c.TestFirmware {
		if fw != "bios" && fw != "uefi" {
			errs = append(errs, fmt.Errorf("test_firmware %q: want bios or uefi", fw))
		}
	}
	if c.BakeTimeout < 0 || c.TestBootTimeout < 0 {
		errs = append(errs, errors.New("bake_timeout and test_boot_timeout must be positive"))
	}
	if err := c.source().Check(); err != nil {
		errs = append(errs, err)
	} else if _, err := c.source().Plan(); err != nil {
		// The same loader as kiln bake: file:line:col: path: message.
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
