package main

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/registry"
)

const refHelp = `References:
  registry.example.com/team/web:1.2     a registry (https; oci:// and docker://
  registry.example.com/team/web@sha256:…  prefixes are accepted too)
  oci:./store:web                       an OCI image layout directory, tag web
  oci:./store@sha256:…                  … by digest

Plain HTTP is used only for loopback registries, or with --insecure, or for
hosts listed in kiln's config:

  registries:
    - host: registry.example.com:5000
      insecure: true

Credentials come from the docker and podman config files and their
credential helpers (kiln login writes the docker one).`

func addRegistryFlags(cmd *cobra.Command) {
	cmd.Flags().Bool("insecure", false, "allow plain HTTP to the registry")
	if cmd.Flags().Lookup("cache-dir") == nil {
		cmd.Flags().String("cache-dir", builder.DefaultCacheDir(), "kiln's cache (pulled blobs live under blobs/)")
	}
}

// registryEntry is one entry of the registries list in kiln's config.
type registryEntry struct {
	Host     string `mapstructure:"host"`
	Insecure bool   `mapstructure:"insecure"`
}

func newRegistryClient(cmd *cobra.Command) (*registry.Client, error) {
	var entries []registryEntry
	if err := cfg.UnmarshalKey("registries", &entries); err != nil {
		return nil, usageError{fmt.Errorf("config: registries: %w (want a list of {host, insecure})", err)}
	}
	var insecure []string
	for _, e := range entries {
		if e.Host == "" {
			return nil, usageError{errors.New("config: registries: an entry without host")}
		}
		if e.Insecure {
			insecure = append(insecure, e.Host)
		}
	}
	return registry.New(registry.Options{
		Insecure:           cfg.GetBool("insecure"),
		InsecureRegistries: insecure,
		CacheDir:           cfg.GetString("cache-dir"),
		Progress:           newRenderer(cmd.ErrOrStderr()),
	}), nil
}

func parseRef(s string) (registry.Ref, error) {
	r, err := registry.ParseRef(s)
	if err != nil {
		return r, usageError{err}
	}
	return r, nil
}

func newPushCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push IMAGE.qcow2 REF",
		Short: "Publish a baked image to an OCI registry or layout directory",
		Long: `Publishes an image kiln baked, with its manifest (the .manifest.json beside it)
and an SPDX 2.3 SBOM of its packages attached as referrers.

Formats (--format):
  kiln           an OCI index with one linux/amd64 manifest whose layer is the
                 qcow2 as it is (application/vnd.kiln.disk.v1.qcow2), and a
                 config that says what kiln test and fleets need (default)
  containerdisk  a KubeVirt containerDisk: one tar layer, disk/disk.img, 107:107
  podman         a podman machine image: index entry disktype=qemu, one
                 NAME.x86_64.qemu.qcow2.zst layer

Blobs the registry has are not sent again; blobs kiln pushed to or pulled
from another repository of the same registry are mounted, not uploaded.
--sign KEY signs the pushed digest in the cosign format (kiln key generate).

` + refHelp,
		Example: `  kiln push web.qcow2 oci:./store:web
  kiln push web.qcow2 registry.example.com/team/web:1.2 --sign kiln.key
  kiln push web.qcow2 registry.example.com/team/web-kubevirt:1.2 --format containerdisk`,
		Args: exactArgs(2),
		RunE: pushAction,
	}
	addPushFlags(cmd, "format")
	addRegistryFlags(cmd)
	return cmd
}

// addPushFlags adds the flags push and bake --push share.
func addPushFlags(cmd *cobra.Command, formatFlag string) {
	cmd.Flags().String(formatFlag, "kiln", "kiln, containerdisk or podman")
	cmd.Flags().String("sign", "", "sign with this private key (PEM; passphrase from KILN_KEY_PASSPHRASE)")
	cmd.Flags().StringArray("annotation", nil, "KEY=VALUE added to the image manifest (repeatable), e.g. org.opencontainers.image.source=https://example.com/repo")
}

func pushAction(cmd *cobra.Command, args []string) error {
	ref, err := parseRef(args[1])
	if err != nil {
		return err
	}
	if _, err := os.Stat(args[0]); err != nil {
		return usageError{fmt.Errorf("image: %w", err)}
	}
	res, err := push(cmd, args[0], ref, cfg.GetString("format"))
	if err != nil {
		return err
	}
	return printPushed(cmd, res)
}

func push(cmd *cobra.Command, image string, ref registry.Ref, format string) (*registry.PushResult, error) {
	f, err := registry.ParseFormat(format)
	if err != nil {
		return nil, usageError{err}
	}
	annotations := map[string]string{}
	for _, a := range cfg.GetStringSlice("annotation") {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--annotation %q: want KEY=VALUE", a)}
		}
		annotations[k] = v
	}
	var key crypto.Signer
	if p := cfg.GetString("sign"); p != "" {
		if key, err = loadSigningKey(p); err != nil {
			return nil, err
		}
	}
	c, err := newRegistryClient(cmd)
	if err != nil {
		return nil, err
	}
	return c.Push(cmd.Context(), registry.PushRequest{Image: image, Ref: ref, Format: f, Annotations: annotations, Sign: key})
}

func printPushed(cmd *cobra.Command, res *registry.PushResult) error {
	if jsonOutput() {
		return printResult(cmd, res)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "pushed %s (%s)\n  digest     %s\n  image      %s\n  disk       %s (%s sent)\n", res.Ref, res.Format, res.Digest, res.ImageDigest, res.DiskDigest, humanSize(res.BlobBytesSent))
	for _, r := range res.Referrers {
		fmt.Fprintf(w, "  referrer   %s %s\n", r.Digest, r.ArtifactType)
	}
	if res.Signature != "" {
		fmt.Fprintf(w, "  signature  %s\n", res.Signature)
	}
	return nil
}

func newPullCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Get an image from a registry or layout directory, verified",
		Long: `Resolves REF to a digest (printed), downloads the disk (resuming an
interrupted download where it stopped), verifies every digest, and writes the
qcow2 and, when one is attached, its kiln manifest beside it. Nothing appears
at the output path unless all of it checked out. kiln images, KubeVirt
containerDisks and podman machine images are all read back into a plain qcow2.

Blobs are kept in kiln's cache (kiln cache ls, kiln cache prune): pulling the
same digest again is a local copy. --verify KEY.pub refuses an image without a
valid signature from that key before anything is downloaded.

` + refHelp,
		Example: `  kiln pull oci:./store:web -o web.qcow2
  kiln pull registry.example.com/team/web:1.2 -o web.qcow2 --verify kiln.pub`,
		Args: exactArgs(1),
		RunE: pullAction,
	}
	cmd.Flags().StringP("out", "o", "", "qcow2 to write (default: the image title, or NAME.qcow2 from the repository)")
	cmd.Flags().String("verify", "", "require a signature from this public key (PEM)")
	addRegistryFlags(cmd)
	return cmd
}

func pullAction(cmd *cobra.Command, args []string) error {
	ref, err := parseRef(args[0])
	if err != nil {
		return err
	}
	out := cfg.GetString("out")
	if out == "" {
		out = defaultPullName(ref)
	}
	var pub crypto.PublicKey
	if p := cfg.GetString("verify"); p != "" {
		if pub, err = registry.LoadPublicKey(p); err != nil {
			return usageError{err}
		}
	}
	c, err := newRegistryClient(cmd)
	if err != nil {
		return err
	}
	res, err := c.Pull(cmd.Context(), registry.PullRequest{Ref: ref, Out: out, Verify: pub})
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, res)
	}
	w := cmd.OutOrStdout()
	how := fmt.Sprintf("%s downloaded", humanSize(res.BytesDownloaded))
	if res.FromCache {
		how = "from cache"
	}
	fmt.Fprintf(w, "pulled %s (%s)\n  digest     %s\n  image      %s (%s)\n", res.Ref, res.Format, res.Digest, res.Out, how)
	if res.Manifest != "" {
		fmt.Fprintf(w, "  manifest   %s\n", res.Manifest)
	}
	if res.Verified {
		fmt.Fprintf(w, "  signature  verified with %s\n", cfg.GetString("verify"))
	}
	return nil
}

// defaultPullName is NAME.qcow2 after the repository or layout directory.
func defaultPullName(ref registry.Ref) string {
	name := ref.Layout
	if ref.Remote != nil {
		name = ref.Remote.Context().RepositoryStr()
	}
	name = filepath.Base(name)
	if !ref.IsLayout() || ref.Tag == "" {
		return name + ".qcow2"
	}
	return ref.Tag + ".qcow2"
}

func newInspectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect REF|IMAGE.qcow2",
		Short: "Describe an image in a registry, a layout directory or a file",
		Long: `Says what an image is — format, digests, sizes, recipe, roles, firmware,
cloud-init version, package count, referrers (manifest, SBOM) and signatures —
reading only manifests and small blobs, never the disk. A local file is
described from its kiln manifest and its qcow2 header.

` + refHelp,
		Example: `  kiln inspect oci:./store:web
  kiln inspect registry.example.com/team/web:1.2 --output json
  kiln inspect web.qcow2`,
		Args: exactArgs(1),
		RunE: inspectAction,
	}
	addRegistryFlags(cmd)
	return cmd
}

func inspectAction(cmd *cobra.Command, args []string) error {
	if st, err := os.Stat(args[0]); err == nil && st.Mode().IsRegular() {
		return inspectFile(cmd, args[0])
	}
	ref, err := parseRef(args[0])
	if err != nil {
		return err
	}
	c, err := newRegistryClient(cmd)
	if err != nil {
		return err
	}
	info, err := c.Inspect(cmd.Context(), ref)
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, info)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s\n  format      %s\n  digest      %s (%s)\n  image       %s\n  disk        %s, %s (%s)\n",
		info.Ref, info.Format, info.Digest, info.MediaType, info.ImageDigest, info.Disk.Digest, humanSize(info.Disk.Size), info.Disk.MediaType)
	if cf := info.Config; cf != nil {
		fmt.Fprintf(w, "  recipe      %s (%s)\n  roles       %s\n  firmware    %s\n  virtual     %s\n  os          %s %s, kernel %s, cloud-init %s\n  packages    %d\n",
			cf.Name, cf.Recipe.Digest, strings.Join(cf.Roles, ", "), strings.Join(cf.Firmware, ", "), humanSize(cf.VirtualSize),
			cf.OS.Distro, cf.OS.Release, cf.OS.Kernel, cf.OS.CloudInit, cf.Packages)
	}
	for _, r := range info.Referrers {
		fmt.Fprintf(w, "  referrer    %s %s (%s)\n", r.Digest, r.ArtifactType, humanSize(r.Size))
	}
	fmt.Fprintf(w, "  signatures  %d\n", info.Signatures)
	return nil
}

func inspectFile(cmd *cobra.Command, path string) error {
	m, err := manifest.Read(manifest.PathFor(path))
	if err != nil {
		return fmt.Errorf("%s: no kiln manifest beside it: %w", path, err)
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"image": path, "manifest": m})
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s\n  recipe      %s (%s)\n  roles       %s\n  firmware    %s\n  virtual     %s\n  os          %s %s, kernel %s, cloud-init %s\n  packages    %d\n",
		path, m.Recipe.Name, m.Recipe.Digest, strings.Join(m.Recipe.Roles, ", "), strings.Join(m.Disk.Firmware, ", "), humanSize(m.Disk.VirtualSize),
		m.OS.Distro, m.OS.Release, m.OS.Kernel, m.OS.CloudInit, len(m.Packages))
	for _, a := range m.Artifacts {
		fmt.Fprintf(w, "  artifact    %s %s (%s)\n", a.Name, a.SHA256, humanSize(a.Size))
	}
	return nil
}

// loadSigningKey reads a private key; an encrypted one takes its
// passphrase from KILN_KEY_PASSPHRASE.
func loadSigningKey(path string) (crypto.Signer, error) {
	return registry.LoadPrivateKey(path, func() ([]byte, error) {
		p, ok := os.LookupEnv("KILN_KEY_PASSPHRASE")
		if !ok {
			return nil, fmt.Errorf("%s is encrypted: set KILN_KEY_PASSPHRASE", path)
		}
		return []byte(p), nil
	})
}

// isImageRef reports an argument that names an image in a registry or a
// layout directory rather than a file.
func isImageRef(arg string) bool {
	return strings.HasPrefix(arg, "oci://") || strings.HasPrefix(arg, "docker://") || strings.HasPrefix(arg, "oci:")
}

// pullForUse pulls an image reference into a temp dir (disk and manifest)
// for a command that works on files; files are returned as they are.
func pullForUse(cmd *cobra.Command, arg string) (string, func(), error) {
	if !isImageRef(arg) {
		return arg, func() {}, nil
	}
	ref, err := parseRef(arg)
	if err != nil {
		return "", nil, err
	}
	c, err := newRegistryClient(cmd)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "kiln-pulled-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	res, err := c.Pull(cmd.Context(), registry.PullRequest{Ref: ref, Out: filepath.Join(dir, defaultPullName(ref))})
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return res.Out, cleanup, nil
}
