package image

import (
	"fmt"
	"os"
	"path/filepath"
)

// maxBackingDepth bounds backing chains; kiln's own are one or two deep.
const maxBackingDepth = 16

// checkBackingChain walks the backing files of the qcow2 image f before
// go-qcow2reader opens them itself, which it would do without a depth
// limit, and with a panic on some failures.
func checkBackingChain(f *os.File, h *qcow2Header) error {
	seen := []os.FileInfo{}
	name := f.Name()
	for depth := 0; h != nil && h.backingOffset != 0; depth++ {
		if depth >= maxBackingDepth {
			return fmt.Errorf("backing chain of %s deeper than %d", f.Name(), maxBackingDepth)
		}
		next, err := backingStep(name, h, &seen)
		if err != nil {
			return err
		}
		name, h = next.name, next.header
	}
	return nil
}

type backingLink struct {
	name   string
	header *qcow2Header // nil when the chain ends in a raw file
}

// backingStep opens the image called name, whose header is h, finds its
// backing file and returns that file's name and header.
func backingStep(name string, h *qcow2Header, seen *[]os.FileInfo) (backingLink, error) {
	f, err := os.Open(name)
	if err != nil {
		return backingLink{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return backingLink{}, err
	}
	for _, s := range *seen {
		if os.SameFile(s, st) {
			return backingLink{}, fmt.Errorf("backing chain loops at %s", name)
		}
	}
	*seen = append(*seen, st)
	raw := make([]byte, h.backingSize)
	if _, err := f.ReadAt(raw, int64(h.backingOffset)); err != nil {
		return backingLink{}, fmt.Errorf("reading backing file name of %s: %w", name, err)
	}
	next := string(raw)
	if !filepath.IsAbs(next) {
		// qemu resolves relative names against the naming image's directory.
		next = filepath.Join(filepath.Dir(name), next)
	}
	link := backingLink{name: next}
	switch h.backingFormat {
	case string(Raw):
		return link, nil // read as raw whatever it holds, as qemu does
	case "", string(QCOW2):
	default:
		return link, fmt.Errorf("backing file %s of %s is %s; kiln reads qcow2 and raw images", next, name, describe(h.backingFormat))
	}
	b, err := os.Open(next)
	if err != nil {
		return link, fmt.Errorf("backing file of %s: %w", name, err)
	}
	defer b.Close()
	bst, err := b.Stat()
	if err != nil {
		return link, err
	}
	detected, err := Detect(b, bst.Size())
	if err != nil {
		return link, fmt.Errorf("backing file %s: %w", next, err)
	}
	switch {
	case detected == string(QCOW2):
		if link.header, err = readQcow2Header(b, bst.Size()); err != nil {
			return link, fmt.Errorf("backing file %s: %w", next, err)
		}
		return link, nil
	case detected == string(Raw) && h.backingFormat == "":
		return link, nil
	case h.backingFormat == string(QCOW2):
		return link, fmt.Errorf("backing file %s of %s should be qcow2 but is %s", next, name, describe(detected))
	default:
		return link, fmt.Errorf("backing file %s of %s is %s; kiln reads qcow2 and raw images", next, name, describe(detected))
	}
}
