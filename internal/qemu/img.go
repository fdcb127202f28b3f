package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
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

// Info describes the image at path (its format is probed).
func (i Img) Info(ctx context.Context, path string) (*ImageInfo, error) {
	out, err := i.run(ctx, "info "+path, []string{"info", "--output=json", path}, nil)
	if err != nil {
		return nil, err
	}
	info, err := parseInfo(out)
	if err != nil {
		return nil, fmt.Errorf("qemu-img: info %s: %w", path, err)
	}
	return info, nil
}

// Check runs `qemu-img check` on path: nil when no errors and no leaked
// clusters were found, otherwise an error carrying qemu-img's report.
// Formats without consistency checks (raw) give an error wrapping
// ErrCheckUnsupported.
func (i Img) Check(ctx context.Context, path string) error {
	_, err := i.run(ctx, "check "+path, []string{"check", path}, nil)
	var te *toolError
	if errors.As(err, &te) && te.code == 63 {
		return fmt.Errorf("%w: %s: %q", ErrCheckUnsupported, path, te.output())
	}
	return err
}

// Compare runs `qemu-img compare`: nil when a and b (of any formats) have
// the same guest-visible contents, an error wrapping ErrImagesDiffer and
// quoting where they differ when they do not, another error when the
// comparison failed.
func (i Img) Compare(ctx context.Context, a, b string) error {
	_, err := i.run(ctx, "compare "+a+" "+b, []string{"compare", a, b}, nil)
	var te *toolError
	if errors.As(err, &te) && te.code == 1 {
		return fmt.Errorf("%w: %s and %s: %q", ErrImagesDiffer, a, b, te.output())
	}
	return err
}

// ConvertOptions tune Convert.
type ConvertOptions struct {
	// SrcFormat is the source format; empty lets qemu-img probe it.
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
func (i Img) Convert(ctx context.Context, src, dst string, o ConvertOptions) error {
	args, err := convertArgs(src, dst, o)
	if err != nil {
		return err
	}
	pw := &progressWriter{fn: o.Progress}
	if _, err := i.run(ctx, "convert "+src+" to "+dst, args, pw); err != nil {
		return err
	}
	pw.finish()
	return nil
}

// CreateOverlay creates overlay as a qcow2 image backed by base (of
// baseFormat), with virtual size size in bytes, or base's size when size
// is 0. base is recorded as given: QEMU resolves a relative base against
// the overlay's directory.
func (i Img) CreateOverlay(ctx context.Context, base, baseFormat, overlay string, size int64) error {
	if baseFormat == "" {
		return fmt.Errorf("qemu-img: create overlay %s: base format is empty", overlay)
	}
	if size < 0 {
		return fmt.Errorf("qemu-img: create overlay %s: negative size %d", overlay, size)
	}
	args := []string{"create", "-f", "qcow2", "-b", base, "-F", baseFormat, overlay}
	if size > 0 {
		args = append(args, strconv.FormatInt(size, 10))
	}
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
