//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go run github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc struct-markdown

// Package push is the plugin's kiln-push post-processor: it publishes the
// image the kiln builder made to an OCI registry or layout directory with
// kiln's registry package, exactly as kiln push does (manifest and SBOM as
// referrers, optional cosign-format signature).
package push

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/builder/kiln"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/internal/uisink"
	"github.com/kiln-project/kiln/registry"
)

// ID identifies kiln-push's artifacts.
const ID = "kiln-project.kiln-push"

// PassphraseEnv is where the passphrase of an encrypted key is read from
// when key_password is not set, as kiln push does.
const PassphraseEnv = "KILN_KEY_PASSPHRASE"

// Config is kiln-push's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Where to publish, as `kiln push` takes it:
	// `registry.example.com/team/web:1.2`, `oci://...`, or an OCI layout
	// directory `oci:./store:web`. Required.
	Ref string `mapstructure:"ref" required:"true"`
	// `kiln` (an OCI index whose layer is the qcow2; the default),
	// `containerdisk` (a KubeVirt containerDisk) or `podman` (a podman
	// machine image).
	Format string `mapstructure:"format"`
	// Allow plain HTTP to the registry. Loopback registries (127.0.0.1)
	// are always reached over plain HTTP.
	Insecure bool `mapstructure:"insecure"`
	// Sign the pushed image with this private key (PEM, cosign format;
	// `kiln key generate` makes one).
	Key string `mapstructure:"key"`
	// Passphrase of an encrypted `key`; pass it from a sensitive variable.
	// Without it, the passphrase is read from `KILN_KEY_PASSPHRASE`.
	KeyPassword string `mapstructure:"key_password"`
	// Annotations added to the image manifest, e.g.
	// `{ "org.opencontainers.image.version" = "1.2" }`.
	Annotations map[string]string `mapstructure:"annotations"`
	// kiln's cache (pushed blobs are remembered under blobs/, so another
	// repository of the same registry mounts them). Defaults to kiln's own.
	CacheDir string `mapstructure:"cache_dir"`

	ctx    interpolate.Context
	ref    registry.Ref
	format registry.Format
}

// PostProcessor is kiln-push.
type PostProcessor struct {
	config Config
}

// ConfigSpec is kiln-push's HCL2 schema.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and checks the configuration; the key is read here,
// so a wrong path or passphrase fails before the build.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	c := &p.config
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         ID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	if c.CacheDir == "" {
		c.CacheDir = builder.DefaultCacheDir()
	}
	var errs []error
	if c.Ref == "" {
		errs = append(errs, errors.New("ref is required: where to publish, e.g. registry.example.com/team/web:1.2 or oci:./store:web"))
	} else if c.ref, err = registry.ParseRef(c.Ref); err != nil {
		errs = append(errs, fmt.Errorf("ref: %w", err))
	}
	if c.format, err = registry.ParseFormat(c.Format); err != nil {
		errs = append(errs, fmt.Errorf("format: %w", err))
	}
	if c.Key != "" {
		if _, err := c.signer(); err != nil {
			errs = append(errs, fmt.Errorf("key: %w", err))
		}
	}
	return errors.Join(errs...)
}

// signer reads the signing key, as kiln push --sign does.
func (c *Config) signer() (crypto.Signer, error) {
	return registry.LoadPrivateKey(c.Key, func() ([]byte, error) {
		if c.KeyPassword != "" {
			return []byte(c.KeyPassword), nil
		}
		p, ok := os.LookupEnv(PassphraseEnv)
		if !ok {
			return nil, fmt.Errorf("%s is encrypted: set key_password or %s", c.Key, PassphraseEnv)
		}
		return []byte(p), nil
	})
}

// PostProcess pushes the kiln builder's image. The input artifact is kept.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	c := &p.config
	if in.BuilderId() != kiln.BuilderID {
		return nil, false, false, fmt.Errorf("kiln-push publishes images the kiln builder made; this artifact comes from %q", in.BuilderId())
	}
	image, _ := in.State(kiln.StateImage).(string)
	mpath, _ := in.State(kiln.StateManifest).(string)
	if image == "" || mpath == "" {
		return nil, false, false, errors.New("the kiln artifact names no image or manifest")
	}
	var key crypto.Signer
	if c.Key != "" {
		var err error
		if key, err = c.signer(); err != nil {
			return nil, false, false, fmt.Errorf("key: %w", err)
		}
	}
	client := registry.New(registry.Options{Insecure: c.Insecure, CacheDir: c.CacheDir, Progress: uisink.New(ui)})
	ui.Say(fmt.Sprintf("Pushing %s to %s (%s format)", image, c.Ref, c.format))
	res, err := client.Push(ctx, registry.PushRequest{Image: image, Manifest: mpath, Ref: c.ref, Format: c.format, Annotations: c.Annotations, Sign: key})
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, false, fmt.Errorf("push to %s cancelled: %w", c.Ref, err)
		}
		return nil, false, false, fmt.Errorf("push to %s: %w", c.Ref, err)
	}
	a := &Artifact{Ref: c.Ref, DigestRef: digestRef(c.ref, res.Digest), Result: *res}
	ui.Say(fmt.Sprintf("pushed %s: %s", c.Ref, a.DigestRef))
	for _, r := range res.Referrers {
		ui.Message(fmt.Sprintf("referrer %s %s", r.Digest, r.ArtifactType))
	}
	if res.Signature != "" {
		ui.Message("signature " + res.Signature)
	}
	return a, true, false, nil
}

// digestRef pins ref to digest: REPO@sha256:..., or oci:DIR@sha256:....
func digestRef(ref registry.Ref, digest string) string {
	if ref.Remote != nil {
		return ref.Remote.Context().Name() + "@" + digest
	}
	return "oci:" + ref.Layout + "@" + digest
}

// Artifact is a pushed image. Its files stay where the builder put them;
// Destroy deletes nothing in the registry.
type Artifact struct {
	Ref       string
	DigestRef string
	Result    registry.PushResult
}

// BuilderId is kiln-push's ID.
func (a *Artifact) BuilderId() string { return ID }

// Files is empty: the image lives in the registry.
func (a *Artifact) Files() []string { return nil }

// Id is the pushed image pinned by digest.
func (a *Artifact) Id() string { return a.DigestRef }

func (a *Artifact) String() string {
	return fmt.Sprintf("kiln image pushed to %s: %s (%s format)", a.Ref, a.DigestRef, a.Result.Format)
}

// State answers "ref", "digest", "digest_ref", "image_digest",
// "disk_digest" and "signature".
func (a *Artifact) State(name string) interface{} {
	switch name {
	case "ref":
		return a.Ref
	case "digest":
		return a.Result.Digest
	case "digest_ref":
		return a.DigestRef
	case "image_digest":
		return a.Result.ImageDigest
	case "disk_digest":
		return a.Result.DiskDigest
	case "signature":
		return a.Result.Signature
	}
	return nil
}

// Destroy does nothing: a pushed image is not Packer's to delete.
func (a *Artifact) Destroy() error { return nil }
