package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
)

// sigSkopeo runs skopeo on a configuration of its own: registries.d turns
// on sigstore attachments for the test registry, and each run names one of
// two policies: "verify" accepts images of the registry only when signed
// by the key (sigstoreSigned, matchRepository), OCI layouts as they come,
// and rejects everything else; "any" accepts anything.
type sigSkopeo struct {
	argv      []string // runs skopeo; the arguments follow
	dir, host string
	env       []string
}

func newSigSkopeo(t *testing.T, host, pub string) *sigSkopeo {
	t.Helper()
	s := &sigSkopeo{argv: testregistry.SigstoreSkopeo(t), dir: t.TempDir(), host: host}
	s.write(t, "verify.json", `{"default":[{"type":"reject"}],"transports":{`+
		`"docker":{"`+host+`":[{"type":"sigstoreSigned","keyPath":"`+pub+`","signedIdentity":{"type":"matchRepository"}}]},`+
		`"oci":{"":[{"type":"insecureAcceptAnything"}]}}}`)
	s.write(t, "any.json", `{"default":[{"type":"insecureAcceptAnything"}]}`)
	s.mkdir(t, "registries.d")
	s.write(t, "registries.d/kiln-test.yaml", "docker:\n  \""+host+"\":\n    use-sigstore-attachments: true\n")
	s.write(t, "registries.conf", "unqualified-search-registries = []\n")
	home := s.mkdir(t, "home")
	s.mkdir(t, "tmp")
	s.env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR="+home, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(s.dir, "registries.conf"))
	return s
}

func (s *sigSkopeo) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *sigSkopeo) mkdir(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs skopeo under a policy and returns its combined output.
func (s *sigSkopeo) run(policy string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flags := []string{
		"--policy", filepath.Join(s.dir, policy+".json"),
		"--registries.d", filepath.Join(s.dir, "registries.d"),
		"--registries-conf", filepath.Join(s.dir, "registries.conf"),
		"--tmpdir", filepath.Join(s.dir, "tmp"),
	}
	cmd := exec.CommandContext(ctx, s.argv[0], append(append(s.argv[1:len(s.argv):len(s.argv)], flags...), args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pullVerified copies HOST/repoTag to a new OCI layout under the verify
// policy.
func (s *sigSkopeo) pullVerified(t *testing.T, repoTag string) (string, error) {
	return s.run("verify", "copy", "--remove-signatures", "--src-tls-verify=false", "docker://"+s.host+"/"+repoTag, "oci:"+filepath.Join(t.TempDir(), "out")+":x")
}

// refusedForSignature checks that skopeo refused for the signature, not
// for some other reason (a network error would refuse too).
func refusedForSignature(t *testing.T, what, out string) {
	t.Helper()
	t.Logf("skopeo on %s: %s", what, strings.TrimSpace(out))
	if !strings.Contains(out, "Source image rejected") || !strings.Contains(strings.ToLower(out), "signature") {
		t.Errorf("skopeo refused %s, but not for its signature:\n%s", what, out)
	}
}

// pushOCIImage writes a small random image with OCI media types (what an
// OCI layout source wants) to ref, over plain HTTP.
func pushOCIImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	layer, err := random.Layer(1024, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	if ref == "" {
		return img
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// verifiesWith checks a sigstore signature with the standard library
// alone: ECDSA over SHA-256 of the payload, ed25519 over the payload.
func verifiesWith(pub crypto.PublicKey, payload []byte, b64sig string) bool {
	sig, err := base64.StdEncoding.DecodeString(b64sig)
	if err != nil {
		return false
	}
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(payload)
		return ecdsa.VerifyASN1(pub, h[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, payload, sig)
	}
	return false
}

// kiln and containers/image (skopeo) on a real docker-registry: each reads
// the other's signatures; a policy requiring the key accepts kiln's
// signature and refuses unsigned and tampered images; skopeo signs with a
// key kiln wrote and kiln verifies it. The skopeo is Debian 13's: Debian
// 12's is built without sigstore (see testregistry.SigstoreSkopeo).
func TestSignaturesWithSkopeo(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()
	c := New(Options{})

	for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			priv, pub := filepath.Join(dir, "kiln.key"), filepath.Join(dir, "kiln.pub")
			gen, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteKeyPair(priv, pub, gen, []byte("test passphrase"), false); err != nil {
				t.Fatal(err)
			}
			passFile := filepath.Join(dir, "passphrase")
			os.WriteFile(passFile, []byte("test passphrase\n"), 0o600)
			key, err := LoadPrivateKey(priv, func() ([]byte, error) { return []byte("test passphrase"), nil })
			if err != nil {
				t.Fatal(err)
			}
			pubKey, err := LoadPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			sk := newSigSkopeo(t, reg.Host, pub)

			signedRepo := reg.Host + "/signed-" + alg
			img := pushOCIImage(t, signedRepo+":1")
			d, _ := img.Digest()
			signedRef := mustRef(t, signedRepo+":1")
			if _, err := c.Sign(ctx, signedRef, key); err != nil {
				t.Fatal(err)
			}
			pushOCIImage(t, reg.Host+"/unsigned-"+alg+":1")

			t.Run("containers/image reads kiln's signature", func(t *testing.T) {
				// The dir: transport stores the signatures skopeo found,
				// as containers/image parsed them.
				out := filepath.Join(t.TempDir(), "dir")
				if o, err := sk.run("any", "copy", "--src-tls-verify=false", "docker://"+signedRepo+":1", "dir:"+out); err != nil {
					t.Fatalf("skopeo copy: %v\n%s", err, o)
				}
				b, err := os.ReadFile(filepath.Join(out, "signature-1"))
				if err != nil {
					t.Fatalf("skopeo found no signature: %v", err)
				}
				const prefix = "\x00sigstore-json\n"
				if !bytes.HasPrefix(b, []byte(prefix)) {
					t.Fatalf("not a sigstore signature: %q", b)
				}
				var sig struct {
					MimeType    string            `json:"mimeType"`
					Payload     []byte            `json:"payload"`
					Annotations map[string]string `json:"annotations"`
				}
				if err := json.Unmarshal(b[len(prefix):], &sig); err != nil {
					t.Fatal(err)
				}
				want := `{"critical":{"identity":{"docker-reference":"` + signedRepo + `"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`
				if sig.MimeType != string(simpleSigningMediaType) || string(sig.Payload) != want {
					t.Fatalf("containers/image read %s %q, want the payload %q", sig.MimeType, sig.Payload, want)
				}
				if !verifiesWith(pubKey, sig.Payload, sig.Annotations["dev.cosignproject.cosign/signature"]) {
					t.Fatal("the signature containers/image read does not verify")
				}
			})

			t.Run("kiln reads containers/image's signature", func(t *testing.T) {
				// skopeo copies the signature to another repository, writing
				// its own sha256-….sig image there.
				copied := reg.Host + "/copied-" + alg
				if o, err := sk.run("any", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+signedRepo+":1", "docker://"+copied+":1"); err != nil {
					t.Fatalf("skopeo copy: %v\n%s", err, o)
				}
				copiedRef := mustRef(t, copied+":1")
				s := mustStore(t, c, copiedRef)
				// For the record: containers/image serialises its own manifest;
				// its config has been byte for byte kiln's (skopeo 1.9.3).
				theirs, ours := sigManifest(t, s, d), sigManifest(t, mustStore(t, c, signedRef), d)
				t.Logf("signature config: containers/image %s, kiln %s", theirs.Config.Digest, ours.Config.Digest)
				if m := sigManifest(t, s, d); len(m.Layers) != 1 {
					t.Fatalf("skopeo wrote %d signatures", len(m.Layers))
				}
				// The signature names the repository it was made for ...
				vr, err := verifySignatures(ctx, s, signedRepo, d, pubKey)
				if err != nil || vr.Verified != 1 {
					t.Fatalf("kiln on skopeo's copy: %+v %v", vr, err)
				}
				// ... and not the one it was copied to.
				_, err = c.Verify(ctx, copiedRef, pubKey)
				wantSignatureError(t, err, "signature for another repository ("+signedRepo+")")
			})

			t.Run("skopeo policy", func(t *testing.T) {
				out, err := sk.pullVerified(t, "signed-"+alg+":1")
				if err != nil {
					t.Fatalf("skopeo refused the image kiln signed: %v\n%s", err, out)
				}
				out, err = sk.pullVerified(t, "unsigned-"+alg+":1")
				if err == nil {
					t.Fatalf("skopeo accepted an unsigned image:\n%s", out)
				}
				refusedForSignature(t, "an unsigned image", out)
				// The same signature image with one bit of the signature
				// flipped.
				s := mustStore(t, c, signedRef)
				m := sigManifest(t, s, d)
				raw, _ := base64.StdEncoding.DecodeString(m.Layers[0].Annotations[signatureAnnotation])
				raw[len(raw)/2] ^= 1
				m.Layers[0].Annotations = map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(raw)}
				rewriteSignatures(t, s, d, m.Layers, nil)
				out, err = sk.pullVerified(t, "signed-"+alg+":1")
				if err == nil {
					t.Fatalf("skopeo accepted a tampered signature:\n%s", out)
				}
				refusedForSignature(t, "a tampered signature", out)
				// Signed again, a good signature beside the bad one passes.
				if _, err := c.Sign(ctx, signedRef, key); err != nil {
					t.Fatal(err)
				}
				if out, err := sk.pullVerified(t, "signed-"+alg+":1"); err != nil {
					t.Fatalf("skopeo refused the re-signed image: %v\n%s", err, out)
				}
			})

			t.Run("skopeo signs with kiln's key", func(t *testing.T) {
				src := "oci:" + filepath.Join(t.TempDir(), "layout") + ":x"
				srcRef := mustRef(t, src)
				if err := mustStore(t, c, srcRef).putImage(ctx, pushOCIImage(t, ""), "x"); err != nil {
					t.Fatal(err)
				}
				other := reg.Host + "/other-" + alg
				out, err := sk.run("any", "copy", "--dest-tls-verify=false", "--sign-by-sigstore-private-key", priv, "--sign-passphrase-file", passFile, src, "docker://"+other+":1")
				if err != nil {
					t.Fatalf("skopeo did not sign with the key kiln wrote: %v\n%s", err, out)
				}
				vr, err := c.Verify(ctx, mustRef(t, other+":1"), pubKey)
				if err != nil || vr.Verified != 1 {
					t.Fatalf("kiln on skopeo's signature: %+v %v", vr, err)
				}
			})
		})
	}
}
