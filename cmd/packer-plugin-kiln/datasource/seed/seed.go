//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc mapstructure-to-hcl2 -type Config,DatasourceOutput
//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc struct-markdown

// Package seed is the plugin's kiln-seed data source: one instance's
// NoCloud seed of a recipe, rendered by kiln's recipes and seed packages
// exactly as kiln seed and kiln render do, for other builders (Packer's
// QEMU builder's cd_content, or cd_files with the ISO it writes).
package seed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/internal/recipe"
	"github.com/kiln-project/kiln/internal/epoch"
	"github.com/kiln-project/kiln/recipes"
	kilnseed "github.com/kiln-project/kiln/seed"
)

// Config is kiln-seed's configuration.
type Config struct {
	// Path of the kiln recipe. Exactly one of `recipe` and
	// `recipe_content` is required.
	Recipe string `mapstructure:"recipe"`
	// The recipe's YAML inline (e.g. `file("web.yaml")` or
	// `templatefile(...)`); problems are placed at `recipe_content:LINE:COL`.
	RecipeContent string `mapstructure:"recipe_content"`
	// Instance name. Defaults to the recipe's name.
	Instance string `mapstructure:"instance"`
	// Instance number, for `{index}` in the recipe's hostname pattern.
	Index int `mapstructure:"index"`
	// What user-data carries: `boot` (the per-instance part, for images
	// kiln baked; the default), `bake` (the bake section as cloud-config)
	// or `full` (both: configures a stock cloud image at first boot).
	Stage string `mapstructure:"stage"`
	// Also write the seed as an image at this path (for `cd_files`, or a
	// drive of its own), atomically, making its directory; mode 0600 when
	// it holds secrets.
	Output string `mapstructure:"output"`
	// Filesystem of the `output` image: `iso` (ISO9660 labelled cidata;
	// the default) or `vfat` (FAT labelled CIDATA).
	Format string `mapstructure:"format"`
}

// DatasourceOutput is what kiln-seed gives the template.
type DatasourceOutput struct {
	// The seed's user-data (cloud-config). Empty when the seed holds
	// secrets: those go only into the `output` file.
	UserData string `mapstructure:"user_data"`
	// The seed's meta-data (instance-id, local-hostname).
	MetaData string `mapstructure:"meta_data"`
	// The seed's network-config; empty when the recipe configures none
	// (cloud-init then uses DHCP on the first interface).
	NetworkConfig string `mapstructure:"network_config"`
	// The instance-id cloud-init sees.
	InstanceID string `mapstructure:"instance_id"`
	// The instance's hostname.
	Hostname string `mapstructure:"hostname"`
	// Absolute path of the written seed image; empty without `output`.
	Path string `mapstructure:"path"`
	// Whether secrets (env:, file:) were resolved into the seed.
	HoldsSecrets bool `mapstructure:"holds_secrets"`
}

// Datasource is kiln-seed.
type Datasource struct {
	config Config
	stage  recipes.Stage
	format kilnseed.Format
}

// ConfigSpec is kiln-seed's HCL2 schema.
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// OutputSpec is the HCL2 schema of what kiln-seed returns.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	return (&DatasourceOutput{}).FlatMapstructure().HCL2Spec()
}

func (c *Config) source() recipe.Source {
	return recipe.Source{Path: c.Recipe, Content: c.RecipeContent}
}

// Configure decodes and checks the configuration, the recipe included.
func (d *Datasource) Configure(raws ...interface{}) error {
	c := &d.config
	if err := config.Decode(c, nil, raws...); err != nil {
		return err
	}
	if c.Stage == "" {
		c.Stage = string(recipes.StageBoot)
	}
	if c.Format == "" {
		c.Format = string(kilnseed.ISO)
	}
	var errs []error
	var err error
	if d.stage, err = recipes.ParseStage(c.Stage); err != nil {
		errs = append(errs, fmt.Errorf("stage: %w", err))
	}
	if d.format, err = kilnseed.ParseFormat(c.Format); err != nil {
		errs = append(errs, fmt.Errorf("format: %w", err))
	}
	if c.Index < 0 {
		errs = append(errs, fmt.Errorf("index %d: must not be negative", c.Index))
	}
	if err := c.source().Check(); err != nil {
		errs = append(errs, err)
	} else if _, err := c.source().Plan(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Execute renders the seed (secrets are resolved here, from the
// environment or files, as kiln seed does) and writes the image when
// output is set.
func (d *Datasource) Execute() (cty.Value, error) {
	c := &d.config
	null := cty.NullVal(cty.DynamicPseudoType)
	plan, err := c.source().Plan()
	if err != nil {
		return null, err
	}
	sd, err := plan.Seed(recipes.Instance{Name: c.Instance, Index: c.Index}, d.stage, plan.Recipe.EnvResolver())
	if err != nil {
		return null, err
	}
	if sd.HoldsSecrets && c.Output == "" {
		return null, errors.New("this seed holds secrets, which kiln-seed does not hand to the template as strings: set output to write it as an image readable by its owner only, and use that file")
	}
	out := DatasourceOutput{
		MetaData:      string(sd.MetaData),
		NetworkConfig: string(sd.NetworkConfig),
		InstanceID:    sd.InstanceID,
		Hostname:      sd.Hostname,
		HoldsSecrets:  sd.HoldsSecrets,
	}
	if !sd.HoldsSecrets {
		out.UserData = string(sd.UserData)
	}
	if c.Output != "" {
		when, err := epoch.FromEnv()
		if err != nil {
			return null, err
		}
		path, err := filepath.Abs(c.Output)
		if err != nil {
			return null, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return null, err
		}
		res, err := kilnseed.Write(path, sd, kilnseed.Options{Format: d.format, ModTime: when})
		if err != nil {
			return null, err
		}
		out.Path = res.Path
	}
	return hcl2helper.HCL2ValueFromConfig(out, d.OutputSpec()), nil
}
