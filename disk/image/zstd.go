package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
)

func init() {
	// go-qcow2reader ships no zstd decompressor; kiln's images use zstd.
	qcow2.SetDecompressor(qcow2.CompressionTypeZstd, decompressZstd)
}

// maxClusterSize is qcow2's largest cluster (cluster bits 21). A
// compressed cluster never decodes to more.
const maxClusterSize = 2 << 20

// zstdDecoder is shared: DecodeAll is safe for concurrent use, and a
// decoder is costly to make per cluster.
var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(2*maxClusterSize))

// decompressZstd decodes one compressed cluster. qcow2 stores the frame
// padded to whole sectors, so only the first frame is decoded: its end is
// found by walking the block headers (RFC 8878 section 3.1.1).
func decompressZstd(r io.Reader) (io.ReadCloser, error) {
	src, err := io.ReadAll(io.LimitReader(r, 2*maxClusterSize+512))
	if err != nil {
		return nil, err
	}
	n, err := zstdFrameLen(src)
	if err != nil {
		return nil, err
	}
	out, err := zstdDecoder.DecodeAll(src[:n], make([]byte, 0, maxClusterSize))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(out)), nil
}

var errZstdFrame = errors.New("image: corrupt zstd frame in compressed cluster")

// zstdFrameLen returns the length of the zstd frame at the start of b.
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != 0xFD2FB528 {
		return 0, errZstdFrame
	}
	fhd := b[4]
	dictIDSizes := [4]int{0, 1, 2, 4}
	fcsSizes := [4]int{0, 2, 4, 8}
	single := fhd&0x20 != 0
	fcs := fcsSizes[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	n := 5 + dictIDSizes[fhd&3] + fcs
	if !single {
		n++ // window descriptor
	}
	for {
		if n+3 > len(b) {
			return 0, errZstdFrame
		}
		h := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		n += 3
		last, typ, size := h&1 != 0, (h>>1)&3, int(h>>3)
		switch typ {
		case 0, 2: // raw, compressed
			n += size
		case 1: // RLE: one byte repeated size times
			n++
		default:
			return 0, errZstdFrame
		}
		if n > len(b) {
			return 0, errZstdFrame
		}
		if last {
			break
		}
	}
	if fhd&4 != 0 { // content checksum
		n += 4
	}
	if n > len(b) {
		return 0, errZstdFrame
	}
	return n, nil
}
