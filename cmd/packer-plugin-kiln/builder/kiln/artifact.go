package kiln

import (
	"fmt"
	"os"
)

// State keys of the kiln builder's artifact, read by kiln-push.
const (
	StateImage        = "image"         // path of the qcow2 (or raw) image
	StateManifest     = "manifest"      // path of its kiln manifest
	StateDigest       = "digest"        // sha256:... of the image file
	StateRecipe       = "recipe"        // the recipe file ("recipe_content" when inline)
	StateRecipeName   = "recipe_name"   // the recipe's name
	StateRecipeDigest = "recipe_digest" // the recipe's digest, as in the manifest
)

// Artifact is a baked image and its manifest.
type Artifact struct {
	Dir          string
	Image        string
	Manifest     string
	Digest       string
	RecipeFile   string
	RecipeName   string
	RecipeDigest string
	Cached       bool
}

// BuilderId is the kiln builder's ID.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files are the image and its manifest.
func (a *Artifact) Files() []string { return []string{a.Image, a.Manifest} }

// Id is the image's digest.
func (a *Artifact) Id() string { return a.Digest }

func (a *Artifact) String() string {
	return fmt.Sprintf("kiln image %s: %s (%s), manifest %s", a.RecipeName, a.Image, a.Digest, a.Manifest)
}

// State answers the keys above; anything else is nil.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case StateImage:
		return a.Image
	case StateManifest:
		return a.Manifest
	case StateDigest:
		return a.Digest
	case StateRecipe:
		return a.RecipeFile
	case StateRecipeName:
		return a.RecipeName
	case StateRecipeDigest:
		return a.RecipeDigest
	}
	return nil
}

// Destroy removes the image, its manifest and the output directory when
// nothing else is left in it.
func (a *Artifact) Destroy() error {
	for _, f := range a.Files() {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	os.Remove(a.Dir) // only when empty
	return nil
}
