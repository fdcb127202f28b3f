package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kiln-project/kiln/registry"
	"github.com/spf13/cobra"
)

// passphraseEnv holds the passphrase of signing keys (empty: unencrypted).
const passphraseEnv = "KILN_KEY_PASSPHRASE"

func newKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Make signing keys for images (cosign format)",
	}
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new key pair for signing images: PREFIX.key and PREFIX.pub",
		Long: `Writes a new signing key pair: the private key to PREFIX.key (mode 0600,
readable by you only from the moment it exists) and the public key to
PREFIX.pub (PEM, PKIX), for everyone who verifies your images.

Key files and signatures follow cosign's format: cosign reads these keys and
kiln reads cosign's, and podman or skopeo built with sigstore support check
kiln's signatures through a policy.json "sigstoreSigned" rule naming
PREFIX.pub (with use-sigstore-attachments set for the registry).

The private key is encrypted with the passphrase from --passphrase-file (its
first line) or the KILN_KEY_PASSPHRASE environment variable, in the sigstore
format (scrypt and nacl/secretbox, "ENCRYPTED COSIGN PRIVATE KEY") that
cosign and containers/image read. With no passphrase it is written
unencrypted (PKCS#8): keep such a key on the machine that signs, or in a
secret store.

Existing files are never overwritten, unless --force says to.`,
		Example: `  kiln key generate                                   # kiln.key, kiln.pub
  kiln key generate --type ed25519 -o release          # release.key, release.pub
  KILN_KEY_PASSPHRASE=... kiln key generate -o ci      # encrypted
  kiln key generate --passphrase-file pass.txt -o ci   # encrypted`,
		Args: exactArgs(0),
		RunE: keyGenerateAction,
	}
	gen.Flags().String("type", registry.KeyECDSAP256, "key type: ecdsa-p256 or ed25519")
	gen.Flags().StringP("out", "o", "kiln", "file name prefix: writes PREFIX.key and PREFIX.pub")
	gen.Flags().String("passphrase-file", "", "encrypt the private key with the first line of this file (default: $"+passphraseEnv+"; empty: unencrypted)")
	gen.Flags().Bool("force", false, "overwrite existing key files")
	cmd.AddCommand(gen)
	return cmd
}

func keyGenerateAction(cmd *cobra.Command, args []string) error {
	prefix := cfg.GetString("out")
	if prefix == "" {
		return usageError{errors.New("-o/--out: give a file name prefix, e.g. -o kiln for kiln.key and kiln.pub")}
	}
	alg := cfg.GetString("type")
	key, err := registry.GenerateKey(alg)
	if err != nil {
		return usageError{err}
	}
	pass, err := keyPassphrase(cfg.GetString("passphrase-file"))
	if err != nil {
		return err
	}
	priv, pub := prefix+".key", prefix+".pub"
	if err := registry.WriteKeyPair(priv, pub, key, pass, cfg.GetBool("force")); err != nil {
		var ke *registry.KeyExistsError
		if errors.As(err, &ke) {
			return invalidInput{fmt.Errorf("%s exists; kiln does not overwrite keys: remove it, choose another -o prefix, or pass --force", ke.Path)}
		}
		return err
	}
	typ, _ := registry.KeyType(key)
	encrypted := len(pass) > 0
	if jsonOutput() {
		return printResult(cmd, map[string]any{"privateKey": priv, "publicKey": pub, "type": typ, "encrypted": encrypted})
	}
	w := cmd.OutOrStdout()
	state := "encrypted"
	if !encrypted {
		state = "not encrypted"
	}
	fmt.Fprintf(w, "wrote %s (%s private key, 0600, %s) and %s (public key)\n", priv, typ, state, pub)
	if !encrypted {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is not encrypted; set %s or pass --passphrase-file to encrypt a key\n", priv, passphraseEnv)
	}
	return nil
}

// keyPassphrase reads the passphrase from file (its first line), else
// from KILN_KEY_PASSPHRASE.
func keyPassphrase(file string) ([]byte, error) {
	if file == "" {
		return []byte(os.Getenv(passphraseEnv)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, invalidInput{fmt.Errorf("--passphrase-file: %w", err)}
		}
		return nil, fmt.Errorf("--passphrase-file: %w", err)
	}
	// The first line, as podman and skopeo read --sign-passphrase-file, so
	// one file serves both.
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return nil, invalidInput{fmt.Errorf("--passphrase-file %s: empty first line; leave the flag out for an unencrypted key", file)}
	}
	return b, nil
}
