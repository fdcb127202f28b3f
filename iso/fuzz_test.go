package iso

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// encodeEntries packs entries for the fuzzer: per entry a 1-byte name
// length, the name, a 2-byte little-endian data length and the data.
func encodeEntries(entries []Entry) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, byte(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

// decodeEntries is the inverse of encodeEntries for any bytes: lengths
// are cut short at the end of the input.
func decodeEntries(b []byte) []Entry {
	var entries []Entry
	take := func(n int) []byte {
		n = min(n, len(b))
		p := b[:n]
		b = b[n:]
		return p
	}
	for len(b) > 0 {
		name := string(take(int(take(1)[0])))
		var data []byte
		if l := take(2); len(l) == 2 {
			data = take(int(binary.LittleEndian.Uint16(l)))
		}
		entries = append(entries, Entry{Name: name, Data: data})
	}
	return entries
}

// FuzzISORoundTrip: for any names, data, label and ModTime, Write either
// refuses with an "iso: " error and writes nothing, or Read gives back
// exactly the label and the entries, sorted by name.
func FuzzISORoundTrip(f *testing.F) {
	f.Add(uint8(ISO9660), testTime.Unix(), "", encodeEntries(seedEntries()))
	f.Add(uint8(VFAT), testTime.Unix(), "", encodeEntries(seedEntries()))
	f.Add(uint8(ISO9660), int64(0), "CIDATA", encodeEntries(integrationEntries()))
	f.Add(uint8(VFAT), int64(-1), "seed_1", encodeEntries(integrationEntries()))
	f.Add(uint8(VFAT), int64(1<<40), "", encodeEntries([]Entry{
		{Name: "USER-D~1"}, {Name: "user-data", Data: []byte("x")}, {Name: "a b.c.d"}, {Name: ".x"},
	}))
	f.Add(uint8(ISO9660), int64(0), "", encodeEntries([]Entry{{Name: "a/b"}, {Name: "a"}, {Name: "A"}}))
	f.Add(uint8(VFAT), int64(0), "bad label", encodeEntries([]Entry{{Name: strings.Repeat("n", 65)}}))
	f.Add(uint8(ISO9660), int64(0), "", encodeEntries([]Entry{{Name: "big", Data: pattern(5000, 1)}}))
	f.Fuzz(func(t *testing.T, format uint8, mod int64, label string, spec []byte) {
		entries := decodeEntries(spec)
		opts := Options{Format: Format(format % 2), Label: label, ModTime: time.Unix(mod, 0)}
		var buf bytes.Buffer
		if err := Write(&buf, opts, entries); err != nil {
			if !strings.HasPrefix(err.Error(), "iso: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes written before error %v", buf.Len(), err)
			}
			return
		}
		gotLabel, got, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("Read of a written %v image: %v", opts.Format, err)
		}
		wantLabel := map[Format]string{ISO9660: "cidata", VFAT: "CIDATA"}[opts.Format]
		if label != "" {
			wantLabel = label
			if opts.Format == VFAT {
				wantLabel = strings.ToUpper(label)
			}
		}
		if gotLabel != wantLabel {
			t.Fatalf("label %q, want %q", gotLabel, wantLabel)
		}
		if d := diffEntries(got, sortedEntries(entries)); d != "" {
			t.Fatal(d)
		}
	})
}

// compactImage encodes an image for the fuzzer as 512-byte units, each
// stored as a 2-byte little-endian length and its bytes up to the last
// non-zero one. Seeds shrink from ~60 KB of mostly zero sectors to a few
// KB, which the fuzzer can mutate and minimize quickly.
func compactImage(img []byte) []byte {
	var b []byte
	for off := 0; off < len(img); off += 512 {
		u := bytes.TrimRight(img[off:min(off+512, len(img))], "\x00")
		b = binary.LittleEndian.AppendUint16(b, uint16(len(u)))
		b = append(b, u...)
	}
	return b
}

// expandImage is the inverse of compactImage for any bytes.
func expandImage(b []byte) []byte {
	var img []byte
	for len(b) >= 2 {
		n := min(int(binary.LittleEndian.Uint16(b))%513, len(b)-2)
		unit := make([]byte, 512)
		copy(unit, b[2:2+n])
		img = append(img, unit...)
		b = b[2+n:]
	}
	return img
}

// FuzzRead: Read never panics on arbitrary bytes; it fails with an
// "iso: " error, or returns entries that Write accepts and round-trips.
// Each input is tried as a raw image and expanded by expandImage.
func FuzzRead(f *testing.F) {
	iso := write(f, Options{ModTime: testTime}, seedEntries())
	fat := write(f, Options{Format: VFAT, ModTime: testTime}, seedEntries())
	f.Add(compactImage(iso))
	f.Add(compactImage(fat[:24576])) // boot sector, FATs, root directory, 3 clusters
	f.Add(compactImage(write(f, Options{ModTime: testTime}, nil)))
	f.Add(compactImage(write(f, Options{ModTime: testTime}, integrationEntries())))
	f.Add([]byte("CD001"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in)
		checkRead(t, expandImage(in))
	})
}

func checkRead(t *testing.T, img []byte) {
	_, entries, err := Read(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		if !strings.HasPrefix(err.Error(), "iso: ") {
			t.Fatalf("error without prefix: %v", err)
		}
		return
	}
	for _, format := range formats {
		var buf bytes.Buffer
		if err := Write(&buf, Options{Format: format}, entries); err != nil {
			t.Fatalf("Read returned entries %q that Write refuses: %v", names(entries), err)
		}
		_, again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if d := diffEntries(again, entries); d != "" {
			t.Fatal(d)
		}
	}
}

func TestCompactImage(t *testing.T) {
	img := write(t, Options{ModTime: testTime}, seedEntries())
	c := compactImage(img)
	if len(c) > 8<<10 || !bytes.Equal(expandImage(c), img) {
		t.Errorf("compactImage: %d bytes, round trip ok: %v", len(c), bytes.Equal(expandImage(c), img))
	}
}
