// Command packer-plugin-kiln is kiln as a Packer plugin: a builder that
// bakes a recipe (source "kiln" "NAME"), a post-processor that publishes
// the image to an OCI registry (kiln-push) and a data source that renders
// an instance's NoCloud seed (kiln-seed). It is a thin shell over kiln's
// packages, like the kiln CLI; see docs/packer.md.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/builder/kiln"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/datasource/seed"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/post-processor/push"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/version"
	"github.com/kiln-project/kiln/internal/inheritfd"
)

func main() {
	// Packer hands its plugins open descriptors; the tools a bake runs
	// must not get them (see internal/inheritfd).
	inheritfd.CloseOnExec()
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(kiln.Builder))
	pps.RegisterPostProcessor("push", new(push.PostProcessor))
	pps.RegisterDatasource("seed", new(seed.Datasource))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
