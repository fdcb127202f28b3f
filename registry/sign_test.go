package registry

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// signFixture is a place to sign in: an OCI layout directory, or a
// repository of go-containerregistry's in-memory registry on 127.0.0.1.
type signFixture struct {
	name string
	c    *Client
	// ref names tag in the fixture's repository or layout.
	ref func(tag string) Ref
}

func signFixtures(t *testing.T) []signFixture {
	dir := t.TempDir()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := New(Options{})
	return []signFixture{
		{"layout", c, func(tag string) Ref { return mustRef(t, "oci:"+filepath.Join(dir, "store")+":"+tag) }},
		{"registry", c, func(tag string) Ref { return mustRef(t, host+"/team/web:"+tag) }},
	}
}

func mustKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pushRandom stores a small random image under ref and returns its digest.
func pushRandom(t *testing.T, c *Client, ref Ref) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := mustStore(t, c, ref)
	if err := s.putImage(context.Background(), img, ref.Identifier()); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func mustStore(t *testing.T, c *Client, ref Ref) store {
	t.Helper()
	s, err := c.store(ref)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sigManifest reads the signature image of d.
func sigManifest(t *testing.T, s store, d v1.Hash) *v1.Manifest {
	t.Helper()
	si, err := readSignatureImage(context.Background(), s, d)
	if err != nil || si.manifest == nil {
		t.Fatalf("signature image of %s: %v", d, err)
	}
	return si.manifest
}

// rewriteSignatures replaces the signature image of d with one of layers;
// extra is the content of a layer the store does not hold yet.
func rewriteSignatures(t *testing.T, s store, d v1.Hash, layers []v1.Descriptor, extra []byte) {
	t.Helper()
	img, err := newSignatureImage(context.Background(), s, layers, extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.putImage(context.Background(), img, signatureTag(d)); err != nil {
		t.Fatal(err)
	}
}

func wantSignatureError(t *testing.T, err error, want string) *SignatureError {
	t.Helper()
	var se *SignatureError
	t.Logf("error: %v", err)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want a *SignatureError saying %q", err, want)
	}
	return se
}

func TestSignAndVerify(t *testing.T) {
	ctx := context.Background()
	for _, f := range signFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
				t.Run(alg, func(t *testing.T) {
					ref := f.ref(alg + "-1")
					d := pushRandom(t, f.c, ref)
					key := mustKey(t, alg)
					res, err := f.c.Sign(ctx, ref, key)
					if err != nil {
						t.Fatal(err)
					}
					id, _ := Identity(ref)
					if res.Digest != d || !res.Added || res.Signatures != 1 || res.SignatureTag != "sha256-"+d.Hex+".sig" || res.Subject != id+"@"+d.String() {
						t.Fatalf("sign result %+v", res)
					}
					vr, err := f.c.Verify(ctx, ref, key.Public())
					if err != nil {
						t.Fatal(err)
					}
					if vr.Verified != 1 || vr.Signatures != 1 || vr.Identity != id || vr.Digest != d {
						t.Fatalf("verify result %+v", vr)
					}
					checkCosignLayout(t, mustStore(t, f.c, ref), id, d, key.Public())

					// By digest it is the same image.
					byDigest := mustRef(t, strings.TrimSuffix(ref.String(), ":"+alg+"-1")+"@"+d.String())
					if _, err := f.c.Verify(ctx, byDigest, key.Public()); err != nil {
						t.Fatalf("verify by digest: %v", err)
					}

					// Another key did not sign it.
					_, err = f.c.Verify(ctx, ref, mustKey(t, alg).Public())
					wantSignatureError(t, err, "no signature from this key (1 found)")
				})
			}
		})
	}
}

// checkCosignLayout reads the signature image as cosign and
// containers/image do, without kiln's verification code.
func checkCosignLayout(t *testing.T, s store, identity string, d v1.Hash, pub crypto.PublicKey) {
	t.Helper()
	ctx := context.Background()
	desc, err := s.resolve(ctx, "sha256-"+d.Hex+".sig")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.manifest(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	json.Unmarshal(raw, &m)
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 {
		t.Fatalf("signature manifest: %s", raw)
	}
	cfg, err := readSmall(ctx, s, m.Config, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		RootFS struct {
			Type    string    `json:"type"`
			DiffIDs []v1.Hash `json:"diff_ids"`
		} `json:"rootfs"`
	}
	json.Unmarshal(cfg, &c)
	if c.RootFS.Type != "layers" || len(c.RootFS.DiffIDs) != 1 || c.RootFS.DiffIDs[0] != m.Layers[0].Digest {
		t.Fatalf("config %s does not list the layer %s", cfg, m.Layers[0].Digest)
	}
	l := m.Layers[0]
	if l.MediaType != "application/vnd.dev.cosign.simplesigning.v1+json" {
		t.Fatalf("layer media type %s", l.MediaType)
	}
	payload, err := readSmall(ctx, s, l, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"` + identity + `"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`
	if string(payload) != want {
		t.Fatalf("payload\n%s\nwant\n%s", payload, want)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(payload)
		ok = ecdsa.VerifyASN1(pub, h[:], sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, payload, sig)
	}
	if !ok {
		t.Fatal("the signature annotation does not verify over the payload")
	}
}

func TestSignTwoKeys(t *testing.T) {
	ctx := context.Background()
	for _, f := range signFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			ref := f.ref("two")
			d := pushRandom(t, f.c, ref)
			k1, k2 := mustKey(t, KeyECDSAP256), mustKey(t, KeyEd25519)
			if _, err := f.c.Sign(ctx, ref, k1); err != nil {
				t.Fatal(err)
			}
			// Signing again with the same key changes nothing.
			again, err := f.c.Sign(ctx, ref, k1)
			if err != nil || again.Added || again.Signatures != 1 {
				t.Fatalf("re-sign: %+v, %v", again, err)
			}
			res, err := f.c.Sign(ctx, ref, k2)
			if err != nil || !res.Added || res.Signatures != 2 {
				t.Fatalf("second key: %+v, %v", res, err)
			}
			for _, k := range []crypto.Signer{k1, k2} {
				vr, err := f.c.Verify(ctx, ref, k.Public())
				if err != nil {
					t.Fatal(err)
				}
				if vr.Signatures != 2 || vr.Verified != 1 {
					t.Fatalf("verify %+v", vr)
				}
			}
			m := sigManifest(t, mustStore(t, f.c, ref), d)
			if len(m.Layers) != 2 || m.Layers[0].Digest != m.Layers[1].Digest {
				t.Fatalf("want two signatures of one payload: %+v", m.Layers)
			}
			_, err = f.c.Verify(ctx, ref, mustKey(t, "").Public())
			se := wantSignatureError(t, err, "no signature from this key (2 found)")
			if len(se.Details) != 2 || se.Unsigned {
				t.Fatalf("details %q", se.Details)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	for _, f := range signFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			key := mustKey(t, "")
			pub := key.Public()

			t.Run("unsigned", func(t *testing.T) {
				ref := f.ref("unsigned")
				d := pushRandom(t, f.c, ref)
				_, err := f.c.Verify(ctx, ref, pub)
				id, _ := Identity(ref)
				se := wantSignatureError(t, err, "no signatures for "+id+"@"+d.String())
				if !se.Unsigned {
					t.Error("Unsigned not set")
				}
			})

			t.Run("tampered payload", func(t *testing.T) {
				ref := f.ref("payload")
				d := pushRandom(t, f.c, ref)
				if _, err := f.c.Sign(ctx, ref, key); err != nil {
					t.Fatal(err)
				}
				s := mustStore(t, f.c, ref)
				m := sigManifest(t, s, d)
				// Another payload under the old signature: the digest
				// matches the content, the signature does not.
				other := []byte(strings.Replace(payloadOf(t, s, m.Layers[0]), "cosign container image signature", "cosign container image signaturE", 1))
				od, n, _ := v1.SHA256(strings.NewReader(string(other)))
				l := m.Layers[0]
				l.Digest, l.Size = od, n
				rewriteSignatures(t, s, d, []v1.Descriptor{l}, other)
				_, err := f.c.Verify(ctx, ref, pub)
				wantSignatureError(t, err, "no signature from this key (1 found)")
			})

			t.Run("tampered annotation", func(t *testing.T) {
				ref := f.ref("annotation")
				d := pushRandom(t, f.c, ref)
				if _, err := f.c.Sign(ctx, ref, key); err != nil {
					t.Fatal(err)
				}
				s := mustStore(t, f.c, ref)
				m := sigManifest(t, s, d)
				sig, _ := base64.StdEncoding.DecodeString(m.Layers[0].Annotations[signatureAnnotation])
				sig[len(sig)-1] ^= 1
				m.Layers[0].Annotations = map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)}
				rewriteSignatures(t, s, d, m.Layers, nil)
				_, err := f.c.Verify(ctx, ref, pub)
				wantSignatureError(t, err, "no signature from this key (1 found)")
			})

			t.Run("signature of another digest", func(t *testing.T) {
				signed, victim := f.ref("signed"), f.ref("victim")
				ds := pushRandom(t, f.c, signed)
				dv := pushRandom(t, f.c, victim)
				if _, err := f.c.Sign(ctx, signed, key); err != nil {
					t.Fatal(err)
				}
				// The valid signature of one image, filed under another.
				s := mustStore(t, f.c, signed)
				rewriteSignatures(t, s, dv, sigManifest(t, s, ds).Layers, nil)
				_, err := f.c.Verify(ctx, victim, pub)
				se := wantSignatureError(t, err, "signature over another digest ("+ds.String()+")")
				if !strings.Contains(se.Subject, dv.String()) {
					t.Errorf("subject %q does not name %s", se.Subject, dv)
				}
			})

			t.Run("signature for another repository", func(t *testing.T) {
				ref := f.ref("elsewhere")
				d := pushRandom(t, f.c, ref)
				s := mustStore(t, f.c, ref)
				if _, err := addSignature(ctx, s, "registry.example.com/other/repo", d, key); err != nil {
					t.Fatal(err)
				}
				_, err := f.c.Verify(ctx, ref, pub)
				wantSignatureError(t, err, "signature for another repository (registry.example.com/other/repo)")
			})

			t.Run("not a signature image", func(t *testing.T) {
				ref := f.ref("odd")
				d := pushRandom(t, f.c, ref)
				// Some other image under the signature tag.
				pushRandom(t, f.c, f.ref(signatureTag(d)))
				_, err := f.c.Verify(ctx, ref, pub)
				wantSignatureError(t, err, "no signatures for")
				if _, err := f.c.Sign(ctx, ref, key); err != nil {
					t.Fatalf("sign next to a foreign layer: %v", err)
				}
				if _, err := f.c.Verify(ctx, ref, pub); err != nil {
					t.Fatal(err)
				}
				if m := sigManifest(t, mustStore(t, f.c, ref), d); len(m.Layers) != 2 {
					t.Fatalf("the foreign layer was not kept: %+v", m.Layers)
				}
			})
		})
	}
}

func payloadOf(t *testing.T, s store, l v1.Descriptor) string {
	t.Helper()
	b, err := readSmall(context.Background(), s, l, maxSignaturePayload)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// containers/image writes the tag into docker-reference ("host/repo:tag");
// the repository is what counts.
func TestVerifyTaggedIdentity(t *testing.T) {
	ctx := context.Background()
	for _, f := range signFixtures(t) {
		if f.name != "registry" {
			continue
		}
		ref := f.ref("tagged")
		d := pushRandom(t, f.c, ref)
		key := mustKey(t, KeyEd25519)
		s := mustStore(t, f.c, ref)
		if _, err := addSignature(ctx, s, ref.Remote.Name(), d, key); err != nil {
			t.Fatal(err)
		}
		vr, err := f.c.Verify(ctx, ref, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if vr.Identity != ref.Remote.Name() {
			t.Fatalf("identity %q", vr.Identity)
		}
	}
}

// A layout's signatures name its directory: a copy elsewhere is another
// repository.
func TestLayoutSignatureStaysWithItsDirectory(t *testing.T) {
	ctx := context.Background()
	c := New(Options{})
	dir := t.TempDir()
	ref := mustRef(t, "oci:"+filepath.Join(dir, "a")+":web")
	pushRandom(t, c, ref)
	key := mustKey(t, "")
	if _, err := c.Sign(ctx, ref, key); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "a"), filepath.Join(dir, "b")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	_, err := c.Verify(ctx, mustRef(t, "oci:"+filepath.Join(dir, "b")+":web"), key.Public())
	wantSignatureError(t, err, "signature for another repository (oci:"+filepath.Join(dir, "a")+")")
}

// A payload blob changed on disk is caught by its digest.
func TestLayoutPayloadChangedOnDisk(t *testing.T) {
	ctx := context.Background()
	c := New(Options{})
	dir := t.TempDir()
	ref := mustRef(t, "oci:"+dir+":web")
	d := pushRandom(t, c, ref)
	key := mustKey(t, "")
	if _, err := c.Sign(ctx, ref, key); err != nil {
		t.Fatal(err)
	}
	l := sigManifest(t, mustStore(t, c, ref), d).Layers[0]
	p := filepath.Join(dir, "blobs", "sha256", l.Digest.Hex)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), d.Hex[:8], "00000000", 1)), 0o644)
	_, err := c.Verify(ctx, ref, key.Public())
	se := wantSignatureError(t, err, "no intact signature (1 found)")
	if !strings.Contains(strings.Join(se.Details, "\n"), "does not match its digest") {
		t.Fatalf("details %q", se.Details)
	}
}

func TestParsePayload(t *testing.T) {
	good := `{"critical":{"identity":{"docker-reference":"r.example.com/a"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}`
	if _, err := parsePayload([]byte(good)); err != nil {
		t.Fatalf("good payload: %v", err)
	}
	withOptional := strings.Replace(good, `"optional":null`, `"optional":{"creator":"x","n":[1,{"a":1}]}`, 1)
	if _, err := parsePayload([]byte(withOptional)); err != nil {
		t.Fatalf("optional claims: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown critical key": strings.Replace(good, `"type":`, `"extra":1,"type":`, 1),
		"repeated digest":      strings.Replace(good, `"docker-manifest-digest":"sha256:ab"`, `"docker-manifest-digest":"sha256:ab","docker-manifest-digest":"sha256:cd"`, 1),
		"repeated critical":    strings.Replace(good, `,"optional":null`, `,"critical":{}`, 1),
		"trailing data":        good + `{}`,
		"wrong type":           strings.Replace(good, "cosign container image signature", "atomic container signature", 1),
		"no digest":            strings.Replace(good, `"sha256:ab"`, `""`, 1),
		"not json":             "signature",
	} {
		if _, err := parsePayload([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Push signs and pull verifies through the same code: a pull with the
// signer's public key goes through, one with another key stops before
// anything is downloaded.
func TestPushSignedPullVerified(t *testing.T) {
	ctx := context.Background()
	for _, f := range signFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			c := New(Options{CacheDir: t.TempDir()})
			ref := f.ref("pushed")
			img, _ := testImage(t, "web", 3)
			key := mustKey(t, KeyEd25519)
			pushed, err := c.Push(ctx, PushRequest{Image: img, Ref: ref, Format: Native, Sign: key})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(pushed.Signature, ":sha256-"+strings.TrimPrefix(pushed.Digest, "sha256:")+".sig") {
				t.Fatalf("push result names signature %q for digest %s", pushed.Signature, pushed.Digest)
			}
			info, err := c.Inspect(ctx, ref)
			if err != nil || info.Signatures != 1 {
				t.Fatalf("inspect: %+v %v", info, err)
			}
			out := filepath.Join(t.TempDir(), "web.qcow2")
			pulled, err := c.Pull(ctx, PullRequest{Ref: ref, Out: out, Verify: key.Public()})
			if err != nil || !pulled.Verified {
				t.Fatalf("verified pull: %+v %v", pulled, err)
			}
			other := filepath.Join(t.TempDir(), "other.qcow2")
			_, err = c.Pull(ctx, PullRequest{Ref: ref, Out: other, Verify: mustKey(t, "").Public()})
			wantSignatureError(t, err, "no signature from this key (1 found)")
			if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a pull that failed verification wrote %s", other)
			}
		})
	}
}
