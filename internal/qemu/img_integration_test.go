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
	if err == nil || !strings.HasPrefix(err.Error(), "qemu-img: info ") || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Info(missing) = %v; want an error quoting qemu-img's stderr", err)
	}
	err = img.Convert(ctx, missing, filepath.Join(dir, "out.qcow2"), ConvertOptions{DstFormat: "qcow2"})
	if err == nil || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Convert(missing) = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := img.Info(cctx, missing); !errors.Is(err, context.Canceled) {
		t.Errorf("Info with a cancelled context = %v; want context.Canceled", err)
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
