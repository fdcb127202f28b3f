package testchromium

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// KeepScreenshot checks that shot is a PNG that shows something (at least
// 640×300, and 1% of its pixels not white), then writes it where test
// artifacts go, $KILN_TEST_ARTIFACTS, else t's temporary directory, as
// name, and logs the path. Names are shared by every package's tests: make
// them say which page they show ("live-view.png").
func KeepScreenshot(t testing.TB, name string, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot %s is no PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 640 || b.Dy() < 300 {
		t.Errorf("the screenshot %s is %dx%d, want at least 640x300", name, b.Dx(), b.Dy())
	}
	if inked := ink(img); inked < 0.01 {
		t.Errorf("the screenshot %s is blank: %.2f%% of its pixels are not white", name, inked*100)
	}
	dir := os.Getenv("KILN_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// ink is the share of an image's pixels that are not white.
func ink(img image.Image) float64 {
	b := img.Bounds()
	if b.Empty() {
		return 0
	}
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				n++
			}
		}
	}
	return float64(n) / float64(b.Dx()*b.Dy())
}
