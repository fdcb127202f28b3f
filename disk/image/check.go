package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MaxVirtualSize is the largest virtual disk Check and Open accept unless
// a caller sets another limit with WithMaxVirtualSize: 1 TiB.
//
// Cloud and vendor images have virtual sizes of 2 to 10 GiB (Windows
// images 127 GiB); 1 TiB leaves room for any of them eight times over. The
// virtual size bounds what a guest booted from the image can write into
// kiln's overlay on the host, and with it the disk a hostile image could
// fill during a bake; an image claiming more is more likely crafted than
// real. kiln's own images can be larger (a recipe may ask for up to
// 16 TiB): callers opening them pass their size.
const MaxVirtualSize int64 = 1 << 40

// Reasons Check and Open refuse an image, for errors.Is. Every error they
// return for the image's content wraps one of them; the message says what
// was found and what to do.
var (
	// ErrBackingFile: the image names a backing file kiln was not told to
	// follow.
	ErrBackingFile = errors.New("image: backing file not followed")
	// ErrDataFile: a qcow2 image keeps its data in an external file.
	ErrDataFile = errors.New("image: external data file not followed")
	// ErrEncrypted: the image is encrypted.
	ErrEncrypted = errors.New("image: encrypted image")
	// ErrFormat: the file is not a qcow2 or raw image.
	ErrFormat = errors.New("image: not a qcow2 or raw image")
	// ErrTooLarge: the virtual disk is larger than the limit.
	ErrTooLarge = errors.New("image: virtual size over the limit")
	// ErrInvalid: a header field is out of range.
	ErrInvalid = errors.New("image: invalid header")
)

// refusal is an error of Check: a message for people, a reason for code.
type refusal struct {
	msg    string
	reason error
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.reason }

func refuse(reason error, format string, args ...any) error {
	return &refusal{msg: "image: " + fmt.Sprintf(format, args...), reason: reason}
}

// Option tunes Check and Open.
type Option func(*options)

type options struct {
	maxSize int64
	backing []string // absolute, cleaned
}

// WithMaxVirtualSize sets the largest virtual size accepted, in bytes, for
// the image and every image of its backing chain; the default is
// MaxVirtualSize. A limit of 0 or less keeps the default.
func WithMaxVirtualSize(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxSize = n
		}
	}
}

// WithBacking lets a qcow2 image kiln made itself (an overlay in its cache
// or work dir) have a backing chain, and names it: paths[0] is the only
// backing file the image may name, paths[1] the only one paths[0] may name,
// and so on. The header's name is resolved as QEMU resolves it (relative
// names against the directory of the image naming them) and compared, made
// absolute and cleaned, with the path given here; any other name is
// refused. A chain shorter than paths is fine, a longer one is not. The
// header must record each backing file's format (qcow2 or raw), as every
// qemu-img create -b ... -F ... does: kiln does not probe formats.
//
// Without WithBacking any backing file is refused.
func WithBacking(paths ...string) Option {
	return func(o *options) {
		for _, p := range paths {
			o.backing = append(o.backing, absPath(p))
		}
	}
}

func makeOptions(opts []Option) options {
	o := options{maxSize: MaxVirtualSize}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Info is what Check found.
type Info struct {
	// Format is QCOW2 or Raw.
	Format Format
	// VirtualSize is the size of the disk a guest sees, in bytes.
	VirtualSize int64
}

// Check inspects the image at path as one kiln did not make, before QEMU,
// qemu-img or any kiln reader opens it, and follows nothing it names.
//
// It accepts a regular file holding a raw image or a qcow2 image (version
// 2 or 3) whose header fields are in range, that is not encrypted, keeps
// its data in itself (no external data file), has no backing file (unless
// allowed by WithBacking) and a virtual size of at most MaxVirtualSize (or
// the WithMaxVirtualSize limit). Everything else is refused with an error
// wrapping one of ErrBackingFile, ErrDataFile, ErrEncrypted, ErrFormat,
// ErrTooLarge or ErrInvalid, naming what was found and what to do; errors
// reading the file are returned as they are.
//
// Check reads the image's first cluster only. An image that passes can be
// handed to QEMU or qemu-img with the format Check returns, stated, and no
// backing file (see internal/qemu), or opened with Open.
func Check(path string, opts ...Option) (*Info, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := check(path, f, makeOptions(opts))
	if err != nil {
		return nil, err
	}
	return &c.info, nil
}

// checked is what check verified: the image and its backing chain.
type checked struct {
	info        Info
	clusterSize int64  // qcow2
	chain       []link // backing files, top first
}

// link is one backing file of a verified chain.
type link struct {
	path   string // as go-qcow2reader will open it
	format Format
	file   os.FileInfo // the file verified, for os.SameFile
}

// openRegular opens path, refusing anything but a regular file (a
// directory, a FIFO that would block, a device) before opening it.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if st.IsDir() {
		return nil, refuse(ErrFormat, "%s is a directory", path)
	}
	if !st.Mode().IsRegular() {
		return nil, refuse(ErrFormat, "%s is not a regular file (%s)", path, st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return f, nil
}

// check verifies the image f opened from path, and its backing chain as
// far as o allows one.
func check(path string, f *os.File, o options) (*checked, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, refuse(ErrFormat, "%s is not a regular file (%s)", path, st.Mode().Type())
	}
	name, err := Detect(f, st.Size())
	if err != nil {
		return nil, &refusal{msg: fmt.Sprintf("image: %s: %s", path, trimPrefix(err)), reason: ErrFormat}
	}
	switch name {
	case string(Raw):
		if err := checkSize(path, st.Size(), o); err != nil {
			return nil, err
		}
		return &checked{info: Info{Format: Raw, VirtualSize: st.Size()}}, nil
	case string(QCOW2):
	default:
		return nil, formatError(path, name, f)
	}
	h, err := checkQcow2(path, f, st.Size(), o)
	if err != nil {
		return nil, err
	}
	c := &checked{info: Info{Format: QCOW2, VirtualSize: int64(h.size)}, clusterSize: 1 << h.clusterBits}
	if c.chain, err = checkChain(path, h, o); err != nil {
		return nil, err
	}
	return c, nil
}

// checkQcow2 reads the header of the qcow2 image f and refuses what kiln
// does not accept in one, but its backing file.
func checkQcow2(path string, f io.ReaderAt, fileSize int64, o options) (*qcow2Header, error) {
	h, err := readQcow2Header(f, fileSize)
	if err != nil {
		return nil, refuse(ErrInvalid, "%s: qcow2 header: %v", path, err)
	}
	if h.cryptMethod != 0 {
		method := "AES"
		if h.cryptMethod == 2 {
			method = "LUKS"
		}
		return nil, refuse(ErrEncrypted, "%s is encrypted (%s); kiln reads unencrypted images: decrypt it first with qemu-img convert -O qcow2, giving the key as a --object secret", path, method)
	}
	if h.incompatible&incompatDataFile != 0 {
		return nil, refuse(ErrDataFile, "%s keeps its data in an external data file %s: kiln does not follow files named by images it did not make; if you trust it and that file, make it standalone first with qemu-img convert -O qcow2 %s %s",
			path, quoteName(h.dataFile), path, flatName(path))
	}
	if err := checkSize(path, int64(h.size), o); err != nil {
		return nil, err
	}
	return h, nil
}

// checkSize refuses a virtual size above the limit.
func checkSize(path string, size int64, o options) error {
	if size > o.maxSize {
		return refuse(ErrTooLarge, "%s has a virtual size of %s, over the limit of %s: a disk that large from an image kiln did not make is more likely crafted than real",
			path, sizeString(size), sizeString(o.maxSize))
	}
	return nil
}

// checkChain follows the backing file names of the qcow2 image at path,
// whose header is h, as far as they are the ones o allows, verifying each
// file, and refuses any other.
func checkChain(path string, h *qcow2Header, o options) ([]link, error) {
	var chain []link
	for depth := 0; h.backingOffset != 0; depth++ {
		recorded := h.backingName
		resolved := recorded
		if !filepath.IsAbs(resolved) {
			// QEMU resolves a relative name against the naming image's directory.
			resolved = filepath.Join(filepath.Dir(path), resolved)
		}
		if depth >= len(o.backing) {
			if depth == 0 {
				return nil, refuse(ErrBackingFile, "%s has a backing file %s: kiln does not follow backing files of images it did not make; if you trust it and its backing file, flatten it first with qemu-img convert -O qcow2 %s %s",
					path, quoteName(recorded), path, flatName(path))
			}
			return nil, refuse(ErrBackingFile, "%s, in the backing chain kiln made, has a backing file %s that kiln did not put there; refusing to follow it", path, quoteName(recorded))
		}
		if absPath(resolved) != o.backing[depth] {
			return nil, refuse(ErrBackingFile, "%s has a backing file %s, not the one kiln made it with (%s); refusing to follow it", path, quoteName(recorded), o.backing[depth])
		}
		l, next, err := checkBacking(path, resolved, h.backingFormat, o)
		if err != nil {
			return nil, err
		}
		chain = append(chain, l)
		if next == nil {
			break
		}
		path, h = resolved, next
	}
	return chain, nil
}

// checkBacking verifies the backing file at resolved, named by the image
// at path with the recorded format. It returns the backing file's header
// when it is a qcow2 image.
func checkBacking(path, resolved, format string, o options) (link, *qcow2Header, error) {
	l := link{path: resolved}
	switch format {
	case string(Raw), string(QCOW2):
		l.format = Format(format)
	case "":
		return l, nil, refuse(ErrBackingFile, "%s records no format for its backing file %s; kiln does not probe formats (recreate it with qemu-img create -b ... -F qcow2 or -F raw)", path, resolved)
	default:
		return l, nil, refuse(ErrFormat, "backing file %s of %s is %s; kiln reads qcow2 and raw images", resolved, path, describe(format))
	}
	f, err := openRegular(resolved)
	if err != nil {
		if errors.As(err, new(*refusal)) {
			return l, nil, err
		}
		return l, nil, fmt.Errorf("image: backing file of %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	if l.file, err = f.Stat(); err != nil {
		return l, nil, fmt.Errorf("image: %w", err)
	}
	if l.format == Raw {
		// Read as raw whatever it holds, as QEMU does when told raw.
		return l, nil, checkSize(resolved, l.file.Size(), o)
	}
	detected, err := Detect(f, l.file.Size())
	if err != nil {
		return l, nil, refuse(ErrFormat, "backing file %s: %s", resolved, trimPrefix(err))
	}
	if detected != string(QCOW2) {
		return l, nil, refuse(ErrFormat, "backing file %s of %s should be qcow2 but is %s", resolved, path, describe(detected))
	}
	h, err := checkQcow2(resolved, f, l.file.Size(), o)
	if err != nil {
		return l, nil, err
	}
	return l, h, nil
}

// formatError refuses a file of another format than qcow2 or raw, naming
// it and saying how to get an image kiln reads.
func formatError(path, name string, f io.ReaderAt) error {
	switch name {
	case "vmdk":
		head := make([]byte, 10<<10) // QEMU reads descriptors of up to 20 sectors
		n, _ := f.ReadAt(head, 0)
		if files := descriptorFiles(head[:n], 4); len(files) > 0 && !bytes.HasPrefix(head, []byte("KDMV")) {
			quoted := make([]string, len(files))
			for i, s := range files {
				quoted[i] = quoteName(s)
			}
			return refuse(ErrFormat, "%s is a vmdk descriptor naming %s; kiln reads qcow2 and raw images and follows no file an image names: if you trust it and the files it names, convert it first with qemu-img convert -O qcow2 %s %s",
				path, strings.Join(quoted, ", "), path, convertedName(path))
		}
		fallthrough
	case "vdi", "vhdx", "vhd", "qed", "qcow", "parallels", "bochs":
		return refuse(ErrFormat, "%s is %s; kiln reads qcow2 and raw images: convert it first with qemu-img convert -O qcow2 %s %s",
			path, describe(name), path, convertedName(path))
	case "luks":
		return refuse(ErrEncrypted, "%s is a LUKS-encrypted image; kiln reads unencrypted qcow2 and raw images: decrypt it first with qemu-img convert -O qcow2, giving the key as a --object secret", path)
	case "gzip", "xz", "zstd", "bzip2":
		tool := map[string]string{"gzip": "gzip -dk", "xz": "xz -dk", "zstd": "zstd -d", "bzip2": "bzip2 -dk"}[name]
		return refuse(ErrFormat, "%s is %s; kiln reads qcow2 and raw images: decompress it first (%s %s)", path, describe(name), tool, path)
	case "tar":
		return refuse(ErrFormat, "%s is %s; kiln reads qcow2 and raw images: extract the disk image from it first", path, describe(name))
	}
	return refuse(ErrFormat, "%s is %s; kiln reads qcow2 and raw images", path, describe(name))
}

// quoteName quotes a name read from an image for an error message, cut
// short: it is the image author's text, not the user's.
func quoteName(s string) string {
	const max = 256
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// flatName and convertedName suggest an output name beside path.
func flatName(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-flat.qcow2"
}

func convertedName(path string) string {
	if filepath.Ext(path) == ".qcow2" {
		return flatName(path)
	}
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".qcow2"
}

// absPath is path made absolute and cleaned; left as it is when the
// working directory is unknown.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// sizeString is n bytes in the largest binary unit that divides it.
func sizeString(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
