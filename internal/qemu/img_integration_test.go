package qemu

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

func newImg(t *testing.T) Img {
	t.Helper()
	testutil.Integration(t)
	return Img{Binary: testutil.NeedTool(t, "qemu-img")}
}

// writeRaw writes a raw image of size bytes: incompressible data in the
// first half, text in the next quarter and zeros after, so that zstd
// clusters and sparse clusters both occur.
func writeRaw(t *testing.T, path string, size int) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size/2; i++ {
		b[i] = byte(r.Uint32())
	}
	copy(b[size/2:size*3/4], strings.Repeat("kiln golden image ", size/4/18+1))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImg_ConvertZstd converts a raw image to zstd-compressed qcow2 and
// verifies it with qemu-img itself: info, check and compare.
func TestImg_ConvertZstd(t *testing.T) {
	img := newImg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	raw, qcow := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	const size = 32 << 20
	writeRaw(t, raw, size)

	var progress []float64
	begin := time.Now()
	err := img.Convert(ctx, raw, qcow, ConvertOptions{
		SrcFormat:   "raw",
		DstFormat:   "qcow2",
		Compression: "zstd",
		Progress:    func(p float64) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	t.Logf("convert 32 MiB to zstd qcow2: %v, %d progress calls", time.Since(begin).Round(time.Millisecond), len(progress))
	if len(progress) < 2 || progress[len(progress)-1] != 100 {
		t.Errorf("progress = %v; want several values ending at 100", progress)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Errorf("progress not increasing: %v", progress)
			break
		}
	}

	info, err := img.Info(ctx, qcow)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Format != "qcow2" || info.Compression != "zstd" || info.VirtualSize != size ||
		info.ClusterSize != 65536 || info.BackingFile != "" || info.ActualSize <= 0 || info.ActualSize >= size {
		t.Errorf("Info = %+v", *info)
	}
	if err := img.Check(ctx, qcow); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := img.Compare(ctx, raw, qcow); err != nil {
		t.Errorf("Compare(raw, qcow2): %v", err)
	}

	// A changed byte is found, and reported as ErrImagesDiffer.
	other := filepath.Join(dir, "other.raw")
	writeRaw(t, other, size)
	f, err := os.OpenFile(other, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'!'}, size-1)
	f.Close()
	err = img.Compare(ctx, other, qcow)
	if !errors.Is(err, ErrImagesDiffer) || !strings.Contains(err.Error(), "mismatch") {
		t.Errorf("Compare(changed, qcow2) = %v; want ErrImagesDiffer quoting qemu-img", err)
	}

	rawInfo, err := img.Info(ctx, raw)
	if err != nil || rawInfo.Format != "raw" || rawInfo.Compression != "" || rawInfo.VirtualSize != size {
		t.Errorf("Info(raw) = %+v, %v", rawInfo, err)
	}
	if err := img.Check(ctx, raw); !errors.Is(err, ErrCheckUnsupported) {
		t.Errorf("Check(raw) = %v; want ErrCheckUnsupported", err)
	}
}

// TestImg_CheckCorrupt: Check reports a damaged qcow2 with qemu-img's
// own words.
func TestImg_CheckCorrupt(t *testing.T) {
	img := newImg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	raw, qcow := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	writeRaw(t, raw, 4<<20)
	if err := img.Convert(ctx, raw, qcow, ConvertOptions{DstFormat: "qcow2"}); err != nil {
		t.Fatal(err)
	}
	// Point the refcount table (header offset 48, 8 bytes big-endian)
	// past the end of the file.
	f, err := os.OpenFile(qcow, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0, 0, 0, 0, 0x10, 0, 0, 0}, 48)
	f.Close()
	err = img.Check(ctx, qcow)
	if err == nil || !strings.HasPrefix(err.Error(), "qemu-img: check ") || !strings.Contains(err.Error(), `"`) {
		t.Errorf("Check(corrupt) = %v; want an error quoting qemu-img", err)
	}
	t.Logf("Check(corrupt): %v", err)
}

// TestImg_Overlay creates an overlay on a base, grows it and reads its
// backing file back.
func TestImg_Overlay(t *testing.T) {
	img := newImg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	raw, base, overlay := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "vm.qcow2")
	writeRaw(t, raw, 4<<20)
	if err := img.Convert(ctx, raw, base, ConvertOptions{DstFormat: "qcow2", Compression: "zlib"}); err != nil {
		t.Fatal(err)
	}
	if err := img.CreateOverlay(ctx, base, "qcow2", overlay, 0); err != nil {
		t.Fatalf("CreateOverlay: %v", err)
	}
	info, err := img.Info(ctx, overlay)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.BackingFile != base || info.BackingFormat != "qcow2" || info.VirtualSize != 4<<20 {
		t.Errorf("Info(overlay) = %+v", *info)
	}
	if err := img.Compare(ctx, raw, overlay); err != nil {
		t.Errorf("Compare(raw, overlay): %v", err)
	}

	if err := img.Resize(ctx, overlay, 8<<20); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if info, err := img.Info(ctx, overlay); err != nil || info.VirtualSize != 8<<20 {
		t.Errorf("after Resize: %+v, %v", info, err)
	}
	if err := img.Resize(ctx, overlay, 4<<20); err == nil || !strings.Contains(err.Error(), "shrink") {
		t.Errorf("shrinking Resize = %v; want qemu-img's refusal", err)
	}

	sized := filepath.Join(dir, "big.qcow2")
	if err := img.CreateOverlay(ctx, base, "qcow2", sized, 16<<20); err != nil {
		t.Fatal(err)
	}
	if info, err := img.Info(ctx, sized); err != nil || info.VirtualSize != 16<<20 {
		t.Errorf("sized overlay: %+v, %v", info, err)
	}
	if err := img.CreateOverlay(ctx, base, "", sized, 0); err == nil {
		t.Error("CreateOverlay without a base format succeeded")
	}
}

func TestImg_Errors(t *testing.T) {
	img := newImg(t)
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.qcow2")
	_, err := img.Info(ctx, missing)
	if err == nil || !strings.HasPrefix(err.Error(), "qemu-img: info "+missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Info(missing) = %v; want an error naming the file", err)
	}
	_, err = img.InfoImage(ctx, Image{Path: missing, Format: "raw"})
	if err == nil || !strings.HasPrefix(err.Error(), "qemu-img: info ") || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("InfoImage(missing) = %v; want an error quoting qemu-img's stderr", err)
	}
	err = img.Convert(ctx, missing, filepath.Join(dir, "out.qcow2"), ConvertOptions{DstFormat: "qcow2"})
	if err == nil || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Convert(missing) = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := img.InfoImage(cctx, Image{Path: missing, Format: "raw"}); !errors.Is(err, context.Canceled) {
		t.Errorf("InfoImage with a cancelled context = %v; want context.Canceled", err)
	}
	v, err := img.Version(ctx)
	if err != nil || !strings.Contains(v, ".") {
		t.Errorf("Version = %q, %v", v, err)
	}
	t.Logf("qemu-img %s", v)

	t.Setenv("PATH", dir)
	if _, err := (Img{}).Version(ctx); err == nil || !strings.Contains(err.Error(), "install the qemu-utils package") {
		t.Errorf("no qemu-img in PATH: %v", err)
	}
}

// TestImg_UnstatedBackingNotOpened: qemu-img, as kiln runs it, never opens
// a backing file an image's header names unless kiln states it. The
// header of hostile.qcow2 names a "host file" full of a known pattern (a
// read would show it), or a file that does not exist (an open would
// fail).
func TestImg_UnstatedBackingNotOpened(t *testing.T) {
	img := newImg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.raw")
	if err := os.WriteFile(secret, []byte(strings.Repeat("HOST-SECRET-0123", 1<<16)), 0o644); err != nil {
		t.Fatal(err)
	}
	zeros := filepath.Join(dir, "zeros.raw")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, backing := range []string{secret, filepath.Join(dir, "no", "such", "file")} {
		t.Run(filepath.Base(backing), func(t *testing.T) {
			hostile := filepath.Join(t.TempDir(), "hostile.qcow2")
			qemuImgCreate(t, dir, "-f", "qcow2", "-u", "-b", backing, "-F", "raw", hostile, "1M")
			im := Image{Path: hostile, Format: "qcow2"}

			for name, info := range map[string]func() (*ImageInfo, error){
				"Info":      func() (*ImageInfo, error) { return img.Info(ctx, hostile) },
				"InfoImage": func() (*ImageInfo, error) { return img.InfoImage(ctx, im) },
			} {
				got, err := info()
				if err != nil || got.Format != "qcow2" || got.VirtualSize != 1<<20 || got.BackingFile != backing {
					t.Errorf("%s = %+v, %v; want the header's backing file reported, not opened", name, got, err)
				}
			}
			if err := img.Check(ctx, hostile); err != nil {
				t.Errorf("Check: %v", err)
			}
			if err := img.CheckImage(ctx, im); err != nil {
				t.Errorf("CheckImage: %v", err)
			}
			if err := img.CompareImages(ctx, im, Image{Path: zeros, Format: "raw"}); err != nil {
				t.Errorf("CompareImages(hostile, zeros): %v", err)
			}
			out := filepath.Join(t.TempDir(), "out.raw")
			if err := img.ConvertImage(ctx, im, out, ConvertOptions{DstFormat: "raw"}); err != nil {
				t.Fatalf("ConvertImage: %v", err)
			}
			if b, err := os.ReadFile(out); err != nil || len(b) != 1<<20 || strings.Trim(string(b), "\x00") != "" {
				t.Errorf("ConvertImage wrote %d bytes, not all zeros (%v): %q", len(b), err, b[:min(len(b), 32)])
			}
			// An overlay on it: qemu-img opens neither the base's backing
			// file nor, with -u, the base.
			overlay := filepath.Join(t.TempDir(), "overlay.qcow2")
			if err := img.CreateOverlay(ctx, hostile, "qcow2", overlay, 0); err != nil {
				t.Fatalf("CreateOverlay: %v", err)
			}
			if info, err := img.InfoImage(ctx, Image{Path: overlay, Format: "qcow2"}); err != nil ||
				info.BackingFile != hostile || info.BackingFormat != "qcow2" || info.VirtualSize != 1<<20 {
				t.Errorf("overlay: %+v, %v", info, err)
			}
		})
	}

	// A vmdk descriptor naming a host file: Info does not let qemu-img
	// probe it (it would open the file), and describes it as raw.
	desc := filepath.Join(dir, "x.vmdk")
	if err := os.WriteFile(desc, []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/no/such/host/file\" 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := img.Info(ctx, desc); err != nil || info.Format != "raw" {
		t.Errorf("Info(vmdk descriptor) = %+v, %v; want it read as raw", info, err)
	}

	// External data files cannot be switched off by stating the chain:
	// refused.
	qemuImgCreate(t, dir, "-f", "qcow2", "-o", "data_file="+secret, "ext.qcow2", "1M")
	ext := Image{Path: filepath.Join(dir, "ext.qcow2"), Format: "qcow2"}
	for name, err := range map[string]error{
		"Info":         func() error { _, err := img.Info(ctx, ext.Path); return err }(),
		"CheckImage":   img.CheckImage(ctx, ext),
		"ConvertImage": img.ConvertImage(ctx, ext, filepath.Join(dir, "x.raw"), ConvertOptions{DstFormat: "raw"}),
	} {
		if !errors.Is(err, ErrExternalData) {
			t.Errorf("%s = %v, want ErrExternalData", name, err)
		}
	}
	if err := img.CreateOverlay(ctx, ext.Path, "qcow2", filepath.Join(dir, "o.qcow2"), 1<<20); err != nil {
		t.Fatal(err)
	}
	err := img.CompareImages(ctx, Image{Path: zeros, Format: "raw"}, Image{Path: filepath.Join(dir, "o.qcow2"), Format: "qcow2", Backing: &ext})
	if !errors.Is(err, ErrExternalData) || !strings.Contains(err.Error(), ext.Path) {
		t.Errorf("CompareImages(zeros, overlay on ext) = %v, want ErrExternalData naming %s", err, ext.Path)
	}
}

// TestImg_KilnChain: what kiln does with its own chains, stated whole.
func TestImg_KilnChain(t *testing.T) {
	img := newImg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	writeRaw(t, raw, 4<<20)
	base := filepath.Join(dir, "base.qcow2")
	if err := img.ConvertImage(ctx, Image{Path: raw, Format: "raw"}, base, ConvertOptions{DstFormat: "qcow2", Compression: "zstd"}); err != nil {
		t.Fatal(err)
	}
	// A relative base is found next to the overlay, not in the working
	// directory.
	overlay := filepath.Join(dir, "vm.qcow2")
	if err := img.CreateOverlay(ctx, "base.qcow2", "qcow2", overlay, 0); err != nil {
		t.Fatalf("CreateOverlay(relative base): %v", err)
	}
	chain := Image{Path: overlay, Format: "qcow2", Backing: &Image{Path: base, Format: "qcow2"}}
	if info, err := img.InfoImage(ctx, chain); err != nil || info.VirtualSize != 4<<20 || info.BackingFile != "base.qcow2" {
		t.Errorf("InfoImage(chain) = %+v, %v", info, err)
	}
	if err := img.CompareImages(ctx, chain, Image{Path: raw, Format: "raw"}); err != nil {
		t.Errorf("CompareImages(chain, raw): %v", err)
	}
	if err := img.CompareImages(ctx, Image{Path: overlay, Format: "qcow2"}, Image{Path: raw, Format: "raw"}); !errors.Is(err, ErrImagesDiffer) {
		t.Errorf("CompareImages(overlay alone, raw) = %v; want ErrImagesDiffer: alone it reads zeros", err)
	}
	if err := img.CheckImage(ctx, chain); err != nil {
		t.Errorf("CheckImage(chain): %v", err)
	}
	flat := filepath.Join(dir, "flat.qcow2")
	if err := img.ConvertImage(ctx, chain, flat, ConvertOptions{SrcFormat: "qcow2", DstFormat: "qcow2", Compression: "zstd"}); err != nil {
		t.Fatalf("ConvertImage(chain): %v", err)
	}
	if info, err := img.InfoImage(ctx, Image{Path: flat, Format: "qcow2"}); err != nil || info.BackingFile != "" {
		t.Errorf("flattened: %+v, %v", info, err)
	}
	if err := img.CompareImages(ctx, Image{Path: flat, Format: "qcow2"}, Image{Path: raw, Format: "raw"}); err != nil {
		t.Errorf("CompareImages(flattened, raw): %v", err)
	}
	if err := img.ConvertImage(ctx, chain, flat, ConvertOptions{SrcFormat: "raw", DstFormat: "qcow2"}); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("ConvertImage with a conflicting SrcFormat = %v", err)
	}
	if err := img.CheckImage(ctx, Image{Path: raw, Format: "raw"}); !errors.Is(err, ErrCheckUnsupported) {
		t.Errorf("CheckImage(raw) = %v; want ErrCheckUnsupported", err)
	}
	if err := img.CreateOverlay(ctx, raw, "vmdk", filepath.Join(dir, "x.qcow2"), 0); err == nil || !strings.Contains(err.Error(), `base format "vmdk"`) {
		t.Errorf("CreateOverlay on a vmdk = %v", err)
	}
	if err := img.CreateOverlay(ctx, filepath.Join(dir, "gone.raw"), "raw", filepath.Join(dir, "x.qcow2"), 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CreateOverlay on a missing base = %v", err)
	}
	if _, err := img.InfoImage(ctx, Image{Path: raw, Format: "raw", Backing: &Image{Path: base, Format: "qcow2"}}); err == nil ||
		!strings.Contains(err.Error(), "cannot have a backing image") {
		t.Errorf("InfoImage of a raw image with a backing image = %v", err)
	}
}
