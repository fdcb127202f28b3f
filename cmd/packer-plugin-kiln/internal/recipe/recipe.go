// Package recipe is how the plugin's builder and data source get a recipe
// from a template: a file (recipe) or inline YAML (recipe_content), with
// the template's overrides applied, loaded, defaulted, validated and
// compiled by kiln's own recipes package, so problems read as they do in
// the CLI: file:line:col: path: message.
package recipe

import (
	"errors"
	"fmt"

	"github.com/kiln-project/kiln/recipes"
)

// InlineName stands for the file of an inline recipe in positions
// ("recipe_content:4:3: bake.pakages: ..."); relative references in it
// resolve against Packer's working directory.
const InlineName = "recipe_content"

// Source is where a template's recipe comes from and what it overrides.
type Source struct {
	Path     string // recipe file
	Content  string // inline recipe YAML
	Base     string // overrides the recipe's base
	DiskSize string // overrides disk.size
}

// Check reports problems of the template's settings themselves, each
// naming its HCL key; it reads nothing.
func (s Source) Check() error {
	var errs []error
	switch {
	case s.Path == "" && s.Content == "":
		errs = append(errs, errors.New("recipe or recipe_content is required: the path of a kiln recipe, or its YAML inline"))
	case s.Path != "" && s.Content != "":
		errs = append(errs, errors.New("recipe and recipe_content are exclusive: give the recipe as a file or inline, not both"))
	}
	if s.Base != "" {
		if _, err := recipes.ParseBase(s.Base); err != nil {
			errs = append(errs, fmt.Errorf("base: %w", err))
		}
	}
	if s.DiskSize != "" {
		if _, err := recipes.ParseSize(s.DiskSize); err != nil {
			errs = append(errs, fmt.Errorf("disk_size: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Plan loads the recipe, applies the overrides, and defaults, validates
// and compiles it. A recipe problem comes back as a recipes.ErrorList.
func (s Source) Plan() (*recipes.Plan, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	var r *recipes.Recipe
	var err error
	if s.Path != "" {
		r, err = recipes.Load(s.Path)
	} else {
		r, err = recipes.LoadData(InlineName, []byte(s.Content))
	}
	if err != nil {
		return nil, err
	}
	if s.Base != "" {
		r.Base = s.Base
	}
	if s.DiskSize != "" {
		size, _ := recipes.ParseSize(s.DiskSize) // checked above
		r.Disk.Size = size
	}
	recipes.Default(r)
	if err := recipes.Validate(r); err != nil {
		return nil, err
	}
	return recipes.Compile(r)
}
