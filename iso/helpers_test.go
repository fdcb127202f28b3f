package iso

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// testTime is an arbitrary, odd-second ModTime used by most tests.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

var formats = []Format{ISO9660, VFAT}

// seedEntries is a typical NoCloud seed, deliberately not in name order.
func seedEntries() []Entry {
	return []Entry{
		{Name: "user-data", Data: []byte("#cloud-config\nhostname: kiln-test\nusers:\n  - name: kiln\n    ssh_authorized_keys: [ssh-ed25519 AAAA test]\n")},
		{Name: "network-config", Data: []byte("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n")},
		{Name: "meta-data", Data: []byte("instance-id: iid-kiln-0001\nlocal-hostname: kiln-test\n")},
	}
}

// pattern returns n deterministic, non-repeating-per-sector bytes, so a
// misplaced sector or cluster shows up as a mismatch.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func write(t testing.TB, opts Options, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, opts, entries); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func read(t testing.TB, img []byte) (string, []Entry) {
	t.Helper()
	label, entries, err := Read(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return label, entries
}

// sortedEntries returns a copy of entries sorted by name.
func sortedEntries(entries []Entry) []Entry {
	s := slices.Clone(entries)
	slices.SortFunc(s, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// diffEntries describes the first difference between two entry lists
// (names and bytes), or returns "".
func diffEntries(got, want []Entry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d entries %q, want %d %q", len(got), names(got), len(want), names(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name {
			return fmt.Sprintf("entry %d: name %q, want %q (all: %q)", i, got[i].Name, want[i].Name, names(got))
		}
		if !bytes.Equal(got[i].Data, want[i].Data) {
			return fmt.Sprintf("entry %q: %d bytes differ from the %d written", got[i].Name, len(got[i].Data), len(want[i].Data))
		}
	}
	return ""
}

func names(entries []Entry) []string {
	n := make([]string, len(entries))
	for i, e := range entries {
		n[i] = e.Name
	}
	return n
}
