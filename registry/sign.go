package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Signatures in cosign's layout, which cosign and containers/image
// (skopeo, podman with use-sigstore-attachments) read and write:
//
//	R:sha256-<hex of D>.sig        an OCI image manifest
//	  config   application/vnd.oci.image.config.v1+json  (rootfs.diff_ids = the layers)
//	  layers[] application/vnd.dev.cosign.simplesigning.v1+json, one per signature
//	           content: the simple-signing payload naming R and D
//	           annotation dev.cosignproject.cosign/signature: base64 signature of the content
//
// ECDSA P-256 signs the SHA-256 of the payload (ASN.1 DER), ed25519 the
// payload itself. A signature vouches for the pair (repository, digest), so
// copying a signed image to another repository needs a new signature.
const (
	simpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	signatureAnnotation                    = "dev.cosignproject.cosign/signature"
	cosignSignatureType                    = "cosign container image signature"

	// Bounds on a signature image kiln reads (its manifest is bounded by
	// maxManifestSize).
	maxSignaturePayload = 64 << 10
	maxSignatures       = 100
)

// signatureTag is the tag of the signatures of d.
func signatureTag(d v1.Hash) string { return fallbackTag(d) + ".sig" }

// SignResult is what Sign did.
type SignResult struct {
	// Subject is what was signed, repository@digest.
	Subject string `json:"subject"`
	// Digest is the manifest digest the reference resolved to.
	Digest v1.Hash `json:"digest"`
	// Identity is the docker-reference the signature names.
	Identity string `json:"identity"`
	// SignatureTag and SignatureDigest name the signature image.
	SignatureTag    string  `json:"signatureTag"`
	SignatureDigest v1.Hash `json:"signatureDigest"`
	// Signatures counts the signature image's signatures.
	Signatures int `json:"signatures"`
	// Added is false when this key had signed the digest already and
	// nothing was written.
	Added bool `json:"added"`
}

// VerifyResult is a successful verification.
type VerifyResult struct {
	// Subject is what was verified, repository@digest.
	Subject  string  `json:"subject"`
	Digest   v1.Hash `json:"digest"`
	Identity string  `json:"identity"`
	// SignatureTag names the signature image.
	SignatureTag string `json:"signatureTag"`
	// Signatures are those found, Verified those made by the key.
	Signatures int `json:"signatures"`
	Verified   int `json:"verified"`
}

// SignatureError is an image whose signatures do not prove it is what the
// key holder published: none, none by this key, or a valid signature over
// something else.
type SignatureError struct {
	// Subject is repository@digest.
	Subject string
	// Unsigned is set when there are no signatures at all.
	Unsigned bool
	// Reason says what is wrong, Details each signature's problem.
	Reason  string
	Details []string
}

func (e *SignatureError) Error() string {
	msg := e.Subject + ": " + e.Reason
	if e.Unsigned {
		msg = "no signatures for " + e.Subject + " (" + e.Reason + ")"
	}
	for _, d := range e.Details {
		if len(e.Details) == 1 && strings.HasSuffix(d, ": "+e.Reason) {
			break // one signature: its problem is the reason
		}
		msg += "\n  " + d
	}
	return msg
}

// Identity is the repository name a reference's signatures carry as
// their docker-reference: "registry/repo" for a registry, and for an OCI
// layout, which has none, "oci:" and the layout's absolute path (so a
// signature made in a layout holds for that directory only).
func Identity(r Ref) (string, error) {
	if r.IsLayout() {
		abs, err := filepath.Abs(r.Layout)
		if err != nil {
			return "", err
		}
		return "oci:" + abs, nil
	}
	return r.Remote.Context().Name(), nil
}

// Sign signs the manifest ref names (a tag is resolved to its digest
// first) with key, adding a signature to the image's signature image in
// cosign's layout. Signing a digest this key signed already changes
// nothing; signatures by other keys are kept.
func (c *Client) Sign(ctx context.Context, ref Ref, key crypto.Signer) (SignResult, error) {
	s, err := c.store(ref)
	if err != nil {
		return SignResult{}, err
	}
	id, err := Identity(ref)
	if err != nil {
		return SignResult{}, err
	}
	desc, err := s.resolve(ctx, ref.Identifier())
	if err != nil {
		return SignResult{}, err
	}
	return addSignature(ctx, s, id, desc.Digest, key)
}

// Verify checks that key's public half pub signed the manifest ref names,
// for ref's repository. Failures are a *SignatureError.
func (c *Client) Verify(ctx context.Context, ref Ref, pub crypto.PublicKey) (VerifyResult, error) {
	s, err := c.store(ref)
	if err != nil {
		return VerifyResult{}, err
	}
	id, err := Identity(ref)
	if err != nil {
		return VerifyResult{}, err
	}
	desc, err := s.resolve(ctx, ref.Identifier())
	if err != nil {
		return VerifyResult{}, err
	}
	return verifySignatures(ctx, s, id, desc.Digest, pub)
}

// payload is the simple-signing document cosign signs. Its field order is
// the one cosign writes; "optional" is null.
type payload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional json.RawMessage `json:"optional"`
}

func makePayload(identity string, d v1.Hash) ([]byte, error) {
	var p payload
	p.Critical.Identity.DockerReference = identity
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = cosignSignatureType
	p.Optional = json.RawMessage("null")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// parsePayload reads a signed payload strictly: unknown or repeated keys
// in "critical" and trailing data are errors, so kiln reads exactly what
// cosign and containers/image would.
func parsePayload(b []byte) (payload, error) {
	var p payload
	if err := noDuplicateKeys(b); err != nil {
		return p, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, errors.New("data after the JSON document")
	}
	switch {
	case p.Critical.Type != cosignSignatureType:
		return p, fmt.Errorf("type %q, want %q", p.Critical.Type, cosignSignatureType)
	case p.Critical.Identity.DockerReference == "":
		return p, errors.New("no critical.identity.docker-reference")
	case p.Critical.Image.DockerManifestDigest == "":
		return p, errors.New("no critical.image.docker-manifest-digest")
	}
	return p, nil
}

// noDuplicateKeys refuses JSON objects that repeat a key: parsers differ
// in which one wins, and a signed document must mean one thing.
func noDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.keys[k] {
				return fmt.Errorf("key %q repeated", k)
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a key comes next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

func signPayload(key crypto.Signer, b []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(b)
		return key.Sign(rand.Reader, h[:], crypto.SHA256)
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, b, crypto.Hash(0))
	}
	return nil, fmt.Errorf("unsupported key type %T", key.Public())
}

func verifyPayload(pub crypto.PublicKey, b, sig []byte) bool {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(b)
		return ecdsa.VerifyASN1(pub, h[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, b, sig)
	}
	return false
}

// signatureImage is the signature image of a digest as a store has it:
// its manifest, or none yet.
type signatureImage struct {
	tag      string
	manifest *v1.Manifest
	digest   v1.Hash
}

// readSignatureImage fetches the signature image of d; nil manifest when
// there is none.
func readSignatureImage(ctx context.Context, s store, d v1.Hash) (signatureImage, error) {
	si := signatureImage{tag: signatureTag(d)}
	desc, err := s.resolve(ctx, si.tag)
	if errors.Is(err, errNotFound) {
		return si, nil
	}
	if err != nil {
		return si, err
	}
	switch desc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, "":
	default:
		return si, fmt.Errorf("%s:%s is a %s, not a signature image", s, si.tag, desc.MediaType)
	}
	b, err := s.manifest(ctx, desc)
	if err != nil {
		return si, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return si, fmt.Errorf("%s:%s: signature manifest: %w", s, si.tag, err)
	}
	if len(m.Layers) > maxSignatures {
		return si, fmt.Errorf("%s:%s: %d signatures, more than the %d kiln reads", s, si.tag, len(m.Layers), maxSignatures)
	}
	si.manifest, si.digest = &m, desc.Digest
	return si, nil
}

// signDigest signs d, pushed to s under ref, and returns the signature
// image's reference (for push).
func (c *Client) signDigest(ctx context.Context, s store, ref Ref, d v1.Hash, key crypto.Signer) (string, error) {
	id, err := Identity(ref)
	if err != nil {
		return "", err
	}
	res, err := addSignature(ctx, s, id, d, key)
	if err != nil {
		return "", err
	}
	return s.String() + ":" + res.SignatureTag, nil
}

// verifyDigest requires pub's signature of d in s for ref's repository
// (for pull).
func (c *Client) verifyDigest(ctx context.Context, s store, ref Ref, d v1.Hash, pub crypto.PublicKey) error {
	id, err := Identity(ref)
	if err != nil {
		return err
	}
	_, err = verifySignatures(ctx, s, id, d, pub)
	return err
}

// addSignature adds key's signature of (identity, d) to the signature
// image of d in s.
func addSignature(ctx context.Context, s store, identity string, d v1.Hash, key crypto.Signer) (SignResult, error) {
	if _, err := KeyType(key); err != nil {
		return SignResult{}, err
	}
	res := SignResult{Subject: identity + "@" + d.String(), Digest: d, Identity: identity, SignatureTag: signatureTag(d)}
	pl, err := makePayload(identity, d)
	if err != nil {
		return res, err
	}
	plDigest, _, err := v1.SHA256(bytes.NewReader(pl))
	if err != nil {
		return res, err
	}
	si, err := readSignatureImage(ctx, s, d)
	if err != nil {
		return res, err
	}
	var layers []v1.Descriptor
	if si.manifest != nil {
		layers = si.manifest.Layers
		for _, l := range layers {
			// Same payload, and this key's signature over it: signed already.
			// (ECDSA signatures differ each time, so comparing bytes is not enough.)
			sig, err := base64.StdEncoding.DecodeString(l.Annotations[signatureAnnotation])
			if l.MediaType == simpleSigningMediaType && l.Digest == plDigest && err == nil && verifyPayload(key.Public(), pl, sig) {
				res.SignatureDigest, res.Signatures = si.digest, len(layers)
				return res, nil
			}
		}
		if len(layers) >= maxSignatures {
			return res, fmt.Errorf("%s:%s has %d signatures already, the most kiln keeps", s, si.tag, len(layers))
		}
	}
	sig, err := signPayload(key, pl)
	if err != nil {
		return res, err
	}
	layers = append(layers, v1.Descriptor{
		MediaType:   simpleSigningMediaType,
		Size:        int64(len(pl)),
		Digest:      plDigest,
		Annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	img, err := newSignatureImage(ctx, s, layers, pl)
	if err != nil {
		return res, err
	}
	if err := s.putImage(ctx, img, si.tag); err != nil {
		return res, err
	}
	if res.SignatureDigest, err = img.Digest(); err != nil {
		return res, err
	}
	res.Signatures, res.Added = len(layers), true
	return res, nil
}

// newSignatureImage builds the signature image of layers: the new payload
// is in memory, the earlier layers are in the store already and read back
// only if the store asks for them.
func newSignatureImage(ctx context.Context, s store, layers []v1.Descriptor, newPayload []byte) (v1.Image, error) {
	var cfg struct {
		Architecture string   `json:"architecture"`
		OS           string   `json:"os"`
		Config       struct{} `json:"config"`
		RootFS       struct {
			Type    string    `json:"type"`
			DiffIDs []v1.Hash `json:"diff_ids"`
		} `json:"rootfs"`
	}
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		// Uncompressed content: the diff ID is the digest.
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
		Layers:        layers,
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	newLayer := static.NewLayer(newPayload, simpleSigningMediaType)
	newDigest, err := newLayer.Digest()
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&sigImageCore{
		manifest: rawManifest, config: rawCfg, layers: layers,
		byDigest: func(h v1.Hash) (partial.CompressedLayer, error) {
			if h == newDigest {
				return newLayer, nil
			}
			for _, l := range layers {
				if l.Digest == h {
					return &storedLayer{ctx: ctx, s: s, d: l}, nil
				}
			}
			return nil, fmt.Errorf("signature image has no layer %s", h)
		},
	})
}

type sigImageCore struct {
	manifest, config []byte
	layers           []v1.Descriptor
	byDigest         func(v1.Hash) (partial.CompressedLayer, error)
}

func (i *sigImageCore) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *sigImageCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *sigImageCore) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *sigImageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return i.byDigest(h)
}

// storedLayer is a layer of an earlier signature, read from the store
// (bounded, verified) when it has to be copied.
type storedLayer struct {
	ctx context.Context
	s   store
	d   v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	b, err := readSmall(l.ctx, l.s, l.d, maxSignaturePayload)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// verifySignatures checks that the signature image of d in s holds a
// signature by pub over (identity, d): the payload blob matches its digest,
// the signature verifies, the payload is a cosign image signature for d
// whose docker-reference names identity's repository (a tag in it, as
// containers/image writes, does not matter). One such signature is enough.
func verifySignatures(ctx context.Context, s store, identity string, d v1.Hash, pub crypto.PublicKey) (VerifyResult, error) {
	res := VerifyResult{Subject: identity + "@" + d.String(), Digest: d, SignatureTag: signatureTag(d)}
	if _, err := KeyType(pub); err != nil {
		return res, err
	}
	si, err := readSignatureImage(ctx, s, d)
	if err != nil {
		return res, err
	}
	fail := func(reason string, details []string) (VerifyResult, error) {
		return res, &SignatureError{Subject: res.Subject, Reason: reason, Details: details}
	}
	if si.manifest == nil {
		return res, &SignatureError{Subject: res.Subject, Unsigned: true, Reason: "no " + si.tag + " in " + s.String()}
	}
	// Problems of signatures that verified cryptographically but do not
	// vouch for this image (a signature copied from elsewhere) weigh more
	// than signatures by other keys.
	var wrongKey, unreadable, misdirected []string
	for i, l := range si.manifest.Layers {
		if l.MediaType != simpleSigningMediaType {
			continue
		}
		res.Signatures++
		n := fmt.Sprintf("signature %d", i+1)
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[signatureAnnotation])
		if err != nil || len(sig) == 0 {
			unreadable = append(unreadable, n+": no base64 "+signatureAnnotation+" annotation")
			continue
		}
		b, err := readSmall(ctx, s, l, maxSignaturePayload)
		if err != nil {
			unreadable = append(unreadable, n+": payload: "+err.Error())
			continue
		}
		if !verifyPayload(pub, b, sig) {
			wrongKey = append(wrongKey, n+": not made by this key (or altered)")
			continue
		}
		p, err := parsePayload(b)
		if err != nil {
			misdirected = append(misdirected, n+": signed payload is not a cosign image signature: "+err.Error())
			continue
		}
		if p.Critical.Image.DockerManifestDigest != d.String() {
			misdirected = append(misdirected, fmt.Sprintf("%s: signature over another digest (%s)", n, p.Critical.Image.DockerManifestDigest))
			continue
		}
		if !sameRepository(p.Critical.Identity.DockerReference, identity) {
			misdirected = append(misdirected, fmt.Sprintf("%s: signature for another repository (%s)", n, p.Critical.Identity.DockerReference))
			continue
		}
		res.Verified++
		if res.Identity == "" {
			res.Identity = p.Critical.Identity.DockerReference
		}
	}
	if res.Verified > 0 {
		return res, nil
	}
	details := append(append(misdirected, unreadable...), wrongKey...)
	switch {
	case res.Signatures == 0:
		return res, &SignatureError{Subject: res.Subject, Unsigned: true, Reason: si.tag + " holds none"}
	case len(misdirected) > 0:
		// The key did sign something; say what, it is the likelier attack.
		return fail(strings.SplitN(misdirected[0], ": ", 2)[1], details)
	case len(wrongKey) == 0:
		return fail(fmt.Sprintf("no intact signature (%d found)", res.Signatures), details)
	}
	return fail(fmt.Sprintf("no signature from this key (%d found)", res.Signatures), details)
}

// sameRepository reports whether a signed docker-reference names the
// repository identity, ignoring a tag or digest in it.
func sameRepository(dockerRef, identity string) bool {
	if strings.HasPrefix(identity, "oci:") {
		return dockerRef == identity
	}
	r, err := name.ParseReference(dockerRef, name.WeakValidation)
	if err != nil {
		return false
	}
	return r.Context().Name() == identity
}
