package qemu

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Image is an image file as kiln hands it to QEMU or qemu-img: with its
// format stated (QEMU never probes it) and its backing chain stated (QEMU
// never reads one from the image's header). See doc.go.
type Image struct {
	// Path is the image file, used as it is (no protocol prefixes, no
	// json: names).
	Path string
	// Format is "qcow2" or "raw".
	Format string
	// Backing is the image this qcow2 image is an overlay of, as kiln made
	// it; nil means none, whatever the header names: the image's
	// unallocated clusters then read as zeros. A raw image has none.
	// Backing images are opened read-only.
	Backing *Image
}

// maxChain bounds backing chains (kiln's are one or two deep), and so
// catches a chain that loops back on itself.
const maxChain = 16

// validate reports what is wrong with im and its chain, prefixed with
// what, such as "drives[0]".
func (im *Image) validate(what string) []error {
	var errs []error
	drive := what
	for depth := 0; im != nil; depth, im = depth+1, im.Backing {
		if depth == maxChain {
			return append(errs, fmt.Errorf("%s: backing chain deeper than %d (does it loop?)", drive, maxChain))
		}
		if im.Path == "" {
			errs = append(errs, fmt.Errorf("%s: path is empty", what))
		}
		switch im.Format {
		case "qcow2":
		case "raw":
			if im.Backing != nil {
				errs = append(errs, fmt.Errorf("%s: raw image %s cannot have a backing image", what, im.Path))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: format %q is not qcow2 or raw", what, im.Format))
		}
		what += ".backing"
	}
	return errs
}

// blockNode is a node of QEMU's block graph as -blockdev and json:
// filenames spell it (QAPI BlockdevOptions): a format node (qcow2, raw)
// over a protocol node (file).
type blockNode struct {
	Driver   string     `json:"driver"`
	NodeName string     `json:"node-name,omitempty"`
	Filename string     `json:"filename,omitempty"`
	ReadOnly bool       `json:"read-only,omitempty"`
	Discard  string     `json:"discard,omitempty"`
	File     *blockNode `json:"file,omitempty"`
	// Backing is nil for raw (which takes no backing option), null or a
	// node for qcow2.
	Backing any `json:"backing,omitempty"`
}

// jsonNull is an explicit JSON null: "backing": null opens no backing file.
var jsonNull = json.RawMessage("null")

// node is im as a block node: readOnly and discard ("unmap" or "") apply
// to it and its file; backing images are read-only, without discard.
func (im *Image) node(readOnly bool, discard string) *blockNode {
	n := &blockNode{
		Driver:   im.Format,
		ReadOnly: readOnly,
		Discard:  discard,
		File:     &blockNode{Driver: "file", Filename: im.Path, ReadOnly: readOnly, Discard: discard},
	}
	if im.Format == "qcow2" {
		n.Backing = jsonNull
		if im.Backing != nil {
			n.Backing = im.Backing.node(true, "")
		}
	}
	return n
}

// marshal is n as JSON. It cannot fail: the values are strings and
// booleans.
func (n *blockNode) marshal() string {
	b, err := json.Marshal(n)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ErrExternalData is wrapped by the errors of Start, Img.Info, Img.Check
// and the Img methods taking Images when a qcow2 image of a chain keeps
// its data in an external data file: QEMU and qemu-img would open the file
// its header names even with the chain stated ("data-file" cannot be set
// to null), so kiln refuses it.
var ErrExternalData = errors.New("qcow2 image with an external data file")

// qcow2 header fields read here; disk/image checks the whole header.
const (
	qcow2Magic          = "QFI\xfb"
	qcow2VersionOff     = 4
	qcow2IncompatOff    = 72
	qcow2IncompatData   = 1 << 2
	qcow2HeaderPeekSize = qcow2IncompatOff + 8
)

// peekQcow2 reads the start of the file at path: whether it is a qcow2
// image, and whether it keeps its data in an external data file.
func peekQcow2(path string) (isQcow2, externalData bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	var b [qcow2HeaderPeekSize]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, false, err
	}
	if n < len(qcow2Magic) || string(b[:len(qcow2Magic)]) != qcow2Magic {
		return false, false, nil
	}
	external := n == len(b) && binary.BigEndian.Uint32(b[qcow2VersionOff:]) >= 3 &&
		binary.BigEndian.Uint64(b[qcow2IncompatOff:])&qcow2IncompatData != 0
	return true, external, nil
}

// refuseExternalData returns an error wrapping ErrExternalData when an
// image of im's chain stated as qcow2 keeps its data in an external data
// file, and an error when one cannot be read.
func (im *Image) refuseExternalData() error {
	for ; im != nil; im = im.Backing {
		if im.Format != "qcow2" {
			continue
		}
		_, external, err := peekQcow2(im.Path)
		if err != nil {
			return err
		}
		if external {
			return fmt.Errorf("%s: %w: kiln does not let QEMU open files an image names; make it standalone first (qemu-img convert -O qcow2)", im.Path, ErrExternalData)
		}
	}
	return nil
}
