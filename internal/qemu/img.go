package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultImgBinary is the tool Img runs when Img.Binary is empty.
const DefaultImgBinary = "qemu-img"

// Errors that Img methods wrap, for errors.Is.
var (
	// ErrImagesDiffer is wrapped by Compare when the contents differ.
	ErrImagesDiffer = errors.New("qemu-img: images differ")
	// ErrCheckUnsupported is wrapped by Check for formats qemu-img cannot
	// check, such as raw.
	ErrCheckUnsupported = errors.New("qemu-img: format does not support checks")
)

// Img runs qemu-img. The zero value uses qemu-img from PATH.
type Img struct {
	// Binary is the qemu-img executable; empty means DefaultImgBinary in PATH.
	Binary string
}

// ImageInfo is what `qemu-img info --output=json` says about an image.
type ImageInfo struct {
	// Format is the image format, such as "qcow2" or "raw".
	Format string
	// VirtualSize is the disk size the guest sees, in bytes.
	VirtualSize int64
	// ActualSize is the space the file takes on the host, in bytes.
	ActualSize int64
	// BackingFile is the backing file as recorded in the image (it may be
	// relative to the image's directory); empty when there is none.
	BackingFile string
	// BackingFormat is the recorded format of the backing file.
	BackingFormat string
	// Compression is the qcow2 compression type ("zlib" or "zstd") that
	// compressed clusters use; empty for other formats.
	Compression string
	// ClusterSize is the qcow2 cluster size in bytes; 0 for raw.
	ClusterSize int64
}

// infoJSON mirrors the fields of `qemu-img info --output=json` that
// ImageInfo carries.
type infoJSON struct {
	Format         string `json:"format"`
	VirtualSize    int64  `json:"virtual-size"`
	ActualSize     int64  `json:"actual-size"`
	ClusterSize    int64  `json:"cluster-size"`
	BackingFile    string `json:"backing-filename"`
	BackingFormat  string `json:"backing-filename-format"`
	FormatSpecific struct {
		Type string `json:"type"`
		Data struct {
			CompressionType string `json:"compression-type"`
		} `json:"data"`
	} `json:"format-specific"`
}

// parseInfo decodes the JSON of `qemu-img info --output=json`.
func parseInfo(b []byte) (*ImageInfo, error) {
	var j infoJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if j.Format == "" {
		return nil, errors.New("no format in the output")
	}
	return &ImageInfo{
		Format:        j.Format,
		VirtualSize:   j.VirtualSize,
		ActualSize:    j.ActualSize,
		BackingFile:   j.BackingFile,
		BackingFormat: j.BackingFormat,
		Compression:   j.FormatSpecific.Data.CompressionType,
		ClusterSize:   j.ClusterSize,
	}, nil
}

// Info describes the image at path without letting qemu-img probe its
// format or open anything it names: the file is described as qcow2 when it
// starts with the qcow2 magic and as raw otherwise (so a vmdk, say, is
// described as raw: name other formats with disk/image.Check first), with
// no backing file. BackingFile still reports what a qcow2 header names.
func (i Img) Info(ctx context.Context, path string) (*ImageInfo, error) {
	im, err := sniff(path)
	if err != nil {
		return nil, fmt.Errorf("qemu-img: info %s: %w", path, err)
	}
	return i.InfoImage(ctx, im)
}

// InfoImage describes the image im with its format as stated (see Image).
// qemu-img info opens no backing file (and refuses a stated one), so only
// im itself is looked at: VirtualSize is im's, BackingFile what its
// header names.
func (i Img) InfoImage(ctx context.Context, im Image) (*ImageInfo, error) {
	if err := i.ready("info", &im); err != nil {
		return nil, err
	}
	top := Image{Path: im.Path, Format: im.Format}
	out, err := i.run(ctx, "info "+im.Path, []string{"info", "--output=json", top.jsonName()}, nil)
	if err != nil {
		return nil, err
	}
	info, err := parseInfo(out)
	if err != nil {
		return nil, fmt.Errorf("qemu-img: info %s: %w", im.Path, err)
	}
	return info, nil
}

// Check runs `qemu-img check` on the image at path, alone: its format is
// found as Info finds it, and no backing file it names is opened (a check
// looks at the image's own metadata only). nil when no errors and no
// leaked clusters were found, otherwise an error carrying qemu-img's
// report. Formats without consistency checks (raw) give an error wrapping
// ErrCheckUnsupported.
func (i Img) Check(ctx context.Context, path string) error {
	im, err := sniff(path)
	if err != nil {
		return fmt.Errorf("qemu-img: check %s: %w", path, err)
	}
	return i.CheckImage(ctx, im)
}

// CheckImage runs `qemu-img check` on im, with its format and chain as
// stated, as Check does.
func (i Img) CheckImage(ctx context.Context, im Image) error {
	if err := i.ready("check", &im); err != nil {
		return err
	}
	_, err := i.run(ctx, "check "+im.Path, []string{"check", im.jsonName()}, nil)
	var te *toolError
	if errors.As(err, &te) && te.code == 63 {
		return fmt.Errorf("%w: %s: %q", ErrCheckUnsupported, im.Path, te.output())
	}
	return err
}

// Compare runs `qemu-img compare`: nil when a and b (of any formats) have
// the same guest-visible contents, an error wrapping ErrImagesDiffer and
// quoting where they differ when they do not, another error when the
// comparison failed.
//
// Deprecated: qemu-img probes the formats of a and b and follows the
// backing files their headers name: use it only on images kiln made.
// CompareImages states both.
func (i Img) Compare(ctx context.Context, a, b string) error {
	_, err := i.run(ctx, "compare "+a+" "+b, []string{"compare", a, b}, nil)
	return compareError(err, a, b)
}

// CompareImages runs `qemu-img compare` on a and b, each with its format
// and chain as stated (see Image); the result is as for Compare.
func (i Img) CompareImages(ctx context.Context, a, b Image) error {
	if err := i.ready("compare", &a, &b); err != nil {
		return err
	}
	_, err := i.run(ctx, "compare "+a.Path+" "+b.Path, []string{"compare", a.jsonName(), b.jsonName()}, nil)
	return compareError(err, a.Path, b.Path)
}

func compareError(err error, a, b string) error {
	var te *toolError
	if errors.As(err, &te) && te.code == 1 {
		return fmt.Errorf("%w: %s and %s: %q", ErrImagesDiffer, a, b, te.output())
	}
	return err
}

// ready validates the images of an Img method taking Images, and refuses
// qcow2 images with external data files (see ErrExternalData).
func (i Img) ready(op string, ims ...*Image) error {
	for _, im := range ims {
		if errs := im.validate("image"); len(errs) > 0 {
			return fmt.Errorf("qemu-img: %s %s: %w", op, im.Path, errors.Join(errs...))
		}
		if err := im.refuseExternalData(); err != nil {
			return fmt.Errorf("qemu-img: %s: %w", op, err)
		}
	}
	return nil
}

// ConvertOptions tune Convert and ConvertImage.
type ConvertOptions struct {
	// SrcFormat is the source format of Convert; empty lets qemu-img probe
	// it. ConvertImage takes the format from its source Image: SrcFormat
	// must then be empty or the same.
	SrcFormat string
	// DstFormat is the output format, such as "qcow2" or "raw"; required.
	DstFormat string
	// Compression compresses qcow2 clusters: "" (none), "zstd" or "zlib".
	Compression string
	// Progress, when set, is called with the percentage done, increasing,
	// from the goroutine reading qemu-img's output; the last call of a
	// successful conversion passes 100.
	Progress func(percent float64)
}

// convertArgs builds the argv of Convert.
func convertArgs(src, dst string, o ConvertOptions) ([]string, error) {
	if o.DstFormat == "" {
		return nil, errors.New("qemu-img: convert: destination format is empty")
	}
	args := []string{"convert", "-p"}
	if o.SrcFormat != "" {
		args = append(args, "-f", o.SrcFormat)
	}
	args = append(args, "-O", o.DstFormat)
	switch o.Compression {
	case "":
	case "zstd", "zlib":
		if o.DstFormat != "qcow2" {
			return nil, fmt.Errorf("qemu-img: convert: %s compression needs qcow2 output, not %s", o.Compression, o.DstFormat)
		}
		args = append(args, "-c", "-o", "compression_type="+o.Compression)
	default:
		return nil, fmt.Errorf("qemu-img: convert: unknown compression %q (want zstd, zlib or none)", o.Compression)
	}
	return append(args, src, dst), nil
}

// Convert writes src as dst in another format, with `qemu-img convert -p`,
// reporting progress through o.Progress. It writes dst in place: callers
// that need an atomic result convert to a temporary name and rename it.
// Writes stay in order (no -W), so the same input gives the same bytes.
//
// Deprecated: qemu-img follows the backing files src's header names (and
// probes its format when o.SrcFormat is empty): use it only on images kiln
// made. ConvertImage states the source's chain.
func (i Img) Convert(ctx context.Context, src, dst string, o ConvertOptions) error {
	args, err := convertArgs(src, dst, o)
	if err != nil {
		return err
	}
	return i.convert(ctx, src, dst, args, o)
}

// ConvertImage writes src, read with its format and chain as stated (see
// Image), as dst, as Convert does. Flattening an overlay kiln made names
// its base: src = Image{Path: overlay, Format: "qcow2", Backing:
// &Image{Path: base, Format: "raw"}}.
func (i Img) ConvertImage(ctx context.Context, src Image, dst string, o ConvertOptions) error {
	if o.SrcFormat != "" && o.SrcFormat != src.Format {
		return fmt.Errorf("qemu-img: convert %s: source format %q differs from the image's %q", src.Path, o.SrcFormat, src.Format)
	}
	if err := i.ready("convert", &src); err != nil {
		return err
	}
	o.SrcFormat = ""
	args, err := convertArgs(src.jsonName(), dst, o)
	if err != nil {
		return err
	}
	return i.convert(ctx, src.Path, dst, args, o)
}

func (i Img) convert(ctx context.Context, src, dst string, args []string, o ConvertOptions) error {
	pw := &progressWriter{fn: o.Progress}
	if _, err := i.run(ctx, "convert "+src+" to "+dst, args, pw); err != nil {
		return err
	}
	pw.finish()
	return nil
}

// CreateOverlay creates overlay as a qcow2 image backed by base, a qcow2
// or raw image (baseFormat), with virtual size size in bytes, or base's
// size when size is 0. base is recorded as given, with its format: QEMU
// resolves a relative base against the overlay's directory.
//
// qemu-img is not let open base's own backing files: it creates the
// overlay without opening base (create -u), after Info-like reading of
// base's size when size is 0. Whoever uses the overlay states the chain
// (Drive.Backing, Image.Backing).
func (i Img) CreateOverlay(ctx context.Context, base, baseFormat, overlay string, size int64) error {
	if baseFormat != "qcow2" && baseFormat != "raw" {
		return fmt.Errorf("qemu-img: create overlay %s: base format %q is not qcow2 or raw", overlay, baseFormat)
	}
	if size < 0 {
		return fmt.Errorf("qemu-img: create overlay %s: negative size %d", overlay, size)
	}
	b := Image{Path: resolveBacking(overlay, base), Format: baseFormat}
	if _, err := os.Stat(b.Path); err != nil {
		return fmt.Errorf("qemu-img: create overlay %s: base: %w", overlay, err)
	}
	if size == 0 {
		info, err := i.InfoImage(ctx, b)
		if err != nil {
			return err
		}
		size = info.VirtualSize
	}
	args := []string{"create", "-f", "qcow2", "-u", "-b", base, "-F", baseFormat, overlay, strconv.FormatInt(size, 10)}
	_, err := i.run(ctx, "create overlay "+overlay, args, nil)
	return err
}

// Resize sets the virtual size of the image at path to size bytes.
// qemu-img refuses to shrink an image (it would need --shrink).
func (i Img) Resize(ctx context.Context, path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("qemu-img: resize %s: size %d is not positive", path, size)
	}
	_, err := i.run(ctx, "resize "+path, []string{"resize", path, strconv.FormatInt(size, 10)}, nil)
	return err
}

// Version returns qemu-img's version, such as "7.2.22".
func (i Img) Version(ctx context.Context) (string, error) {
	out, err := i.run(ctx, "--version", []string{"--version"}, nil)
	if err != nil {
		return "", err
	}
	v, ok := parseVersion(string(out))
	if !ok {
		return "", fmt.Errorf("qemu-img: no version in %q", lastLines(string(out), 2))
	}
	return v, nil
}

// parseVersion finds the word after "version" in "qemu-img version 7.2.22 (Debian ...)".
func parseVersion(s string) (string, bool) {
	f := strings.Fields(s)
	for k := 0; k+1 < len(f); k++ {
		if f[k] == "version" {
			return f[k+1], true
		}
	}
	return "", false
}

// toolError is a failed qemu-img run.
type toolError struct {
	op     string
	code   int
	stdout string
	stderr string
	err    error
}

func (e *toolError) Error() string {
	msg := fmt.Sprintf("qemu-img: %s: %v", e.op, e.err)
	if out := e.output(); out != "" {
		msg += fmt.Sprintf(": %q", out)
	}
	return msg
}

func (e *toolError) Unwrap() error { return e.err }

// output is the last lines of the tool's stderr, then of its stdout
// (where check and compare print their verdicts).
func (e *toolError) output() string {
	return strings.TrimSpace(lastLines(e.stderr, 8) + "\n" + lastLines(e.stdout, 4))
}

// run runs qemu-img. Its stdout goes to out when out is set; otherwise it
// is returned.
func (i Img) run(ctx context.Context, op string, args []string, out io.Writer) ([]byte, error) {
	bin, err := lookTool("qemu-img", i.Binary, DefaultImgBinary, "qemu-utils")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if out != nil {
		cmd.Stdout = out
	}
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		te := &toolError{op: op, code: -1, stdout: stdout.String(), stderr: stderr.String(), err: err}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			te.code = ee.ExitCode()
		}
		return stdout.Bytes(), te
	}
	return stdout.Bytes(), nil
}

// progressWriter parses the progress qemu-img -p prints, "    (12.34/100%)"
// records separated by carriage returns, and reports increasing values.
type progressWriter struct {
	fn      func(float64)
	partial []byte
	last    float64
	any     bool
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexAny(p.partial, "\r\n")
		if i < 0 {
			break
		}
		if v, ok := parseProgress(string(p.partial[:i])); ok {
			p.report(v)
		}
		p.partial = p.partial[i+1:]
	}
	return len(b), nil
}

func (p *progressWriter) report(v float64) {
	if p.fn == nil || (p.any && v <= p.last) {
		return
	}
	p.any, p.last = true, v
	p.fn(v)
}

// finish reports a trailing record and makes sure 100 was reported.
func (p *progressWriter) finish() {
	if v, ok := parseProgress(string(p.partial)); ok {
		p.report(v)
	}
	p.partial = nil
	p.report(100)
}

// parseProgress reads one progress record, "(12.34/100%)" with optional
// surrounding spaces.
func parseProgress(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	s, ok := strings.CutPrefix(s, "(")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "/100%)")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 100 {
		return 0, false
	}
	return v, true
}

// CreateBlank creates an empty qcow2 disk of size bytes.
func (i Img) CreateBlank(ctx context.Context, path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("qemu-img: create %s: size %d is not positive", path, size)
	}
	_, err := i.run(ctx, "create "+path, []string{"create", "-f", "qcow2", path, strconv.FormatInt(size, 10)}, nil)
	return err
}

// jsonName is im as a qemu-img filename: "json:" and its block node.
func (im *Image) jsonName() string { return "json:" + im.node(false, "").marshal() }

// sniff is the image at path in kiln's terms, for the Img methods that
// take a path: qcow2 when the file starts with the qcow2 magic, raw
// otherwise. qemu-img is then told that format, with no backing file.
func sniff(path string) (Image, error) {
	isQcow2, _, err := peekQcow2(path)
	if err != nil {
		return Image{}, err
	}
	if isQcow2 {
		return Image{Path: path, Format: "qcow2"}, nil
	}
	return Image{Path: path, Format: "raw"}, nil
}

// resolveBacking is where QEMU finds the backing file name base recorded
// in an overlay at overlay: relative names are relative to the overlay's
// directory.
func resolveBacking(overlay, base string) string {
	if filepath.IsAbs(base) {
		return base
	}
	return filepath.Join(filepath.Dir(overlay), base)
}
