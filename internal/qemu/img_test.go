package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseProgress(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"    (12.34/100%)", 12.34, true},
		{"(0.00/100%)", 0, true},
		{"(100.00/100%)\n", 100, true},
		{"", 0, false},
		{"(12.34/50%)", 0, false},
		{"(abc/100%)", 0, false},
		{"(101.00/100%)", 0, false},
		{"qemu-img: warning", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseProgress(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseProgress(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestProgressWriter feeds the captured output of `qemu-img convert -p` in
// awkward chunks: values must arrive increasing, without duplicates, and
// end at 100.
func TestProgressWriter(t *testing.T) {
	out, err := os.ReadFile(filepath.Join("testdata", "convert-progress.out"))
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	pw := &progressWriter{fn: func(v float64) { got = append(got, v) }}
	for len(out) > 0 {
		n := min(7, len(out))
		if _, err := pw.Write(out[:n]); err != nil {
			t.Fatal(err)
		}
		out = out[n:]
	}
	pw.finish()
	if len(got) < 10 || got[0] != 0 || got[len(got)-1] != 100 {
		t.Fatalf("progress = %v; want many values from 0 to 100", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("progress not increasing at %d: %v", i, got)
		}
	}
	if !slices.Contains(got, 12.5) {
		t.Errorf("progress lacks 12.5 from the fixture: %v", got)
	}

	// finish reports 100 even when qemu-img printed no final record, once.
	got = nil
	pw = &progressWriter{fn: func(v float64) { got = append(got, v) }}
	pw.Write([]byte("    (50.00/100%)\r    (75.00/1"))
	pw.finish()
	pw.finish()
	if !slices.Equal(got, []float64{50, 100}) {
		t.Errorf("progress = %v, want [50 100]", got)
	}
	// Without a callback nothing is reported and nothing breaks.
	(&progressWriter{}).finish()
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		file string
		want ImageInfo // ActualSize is host-dependent: not compared
	}{
		{"info-qcow2-zstd.json", ImageInfo{Format: "qcow2", VirtualSize: 8 << 20, Compression: "zstd", ClusterSize: 65536}},
		{"info-overlay.json", ImageInfo{Format: "qcow2", VirtualSize: 16 << 20, Compression: "zlib", ClusterSize: 65536,
			BackingFile: "base.qcow2", BackingFormat: "qcow2"}},
		{"info-raw.json", ImageInfo{Format: "raw", VirtualSize: 8 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseInfo(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.ActualSize <= 0 {
				t.Errorf("ActualSize = %d", got.ActualSize)
			}
			got.ActualSize = 0
			if *got != tt.want {
				t.Errorf("parseInfo = %+v\nwant %+v", *got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "{", `{"virtual-size": 1}`, "[]"} {
		if _, err := parseInfo([]byte(bad)); err == nil {
			t.Errorf("parseInfo(%q) succeeded", bad)
		}
	}
}

func TestConvertArgs(t *testing.T) {
	tests := []struct {
		name   string
		o      ConvertOptions
		want   string
		errHas string
	}{
		{"zstd qcow2", ConvertOptions{SrcFormat: "raw", DstFormat: "qcow2", Compression: "zstd"},
			"convert -p -f raw -O qcow2 -c -o compression_type=zstd in out", ""},
		{"zlib qcow2, probed source", ConvertOptions{DstFormat: "qcow2", Compression: "zlib"},
			"convert -p -O qcow2 -c -o compression_type=zlib in out", ""},
		{"plain raw", ConvertOptions{SrcFormat: "qcow2", DstFormat: "raw"},
			"convert -p -f qcow2 -O raw in out", ""},
		{"no destination format", ConvertOptions{}, "", "destination format is empty"},
		{"compressed raw", ConvertOptions{DstFormat: "raw", Compression: "zstd"}, "", "zstd compression needs qcow2"},
		{"unknown compression", ConvertOptions{DstFormat: "qcow2", Compression: "lz4"}, "", `unknown compression "lz4"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := convertArgs("in", "out", tt.o)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "qemu-img: ") {
					t.Errorf("err = %v, want one with %q", err, tt.errHas)
				}
				return
			}
			if err != nil || strings.Join(args, " ") != tt.want {
				t.Errorf("convertArgs = %q, %v; want %q", args, err, tt.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	out := "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
	if v, ok := parseVersion(out); !ok || v != "7.2.22" {
		t.Errorf("parseVersion = %q, %v", v, ok)
	}
	if _, ok := parseVersion("garbage"); ok {
		t.Error("parseVersion(garbage) succeeded")
	}
}
