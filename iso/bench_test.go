package iso

import (
	"io"
	"testing"
)

// BenchmarkWriteSeed writes a typical 3-file seed (a few KB of YAML).
func BenchmarkWriteSeed(b *testing.B) {
	entries := []Entry{
		{Name: "user-data", Data: pattern(4096, 1)},
		{Name: "meta-data", Data: pattern(64, 2)},
		{Name: "network-config", Data: pattern(512, 3)},
	}
	for _, f := range formats {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(4096 + 64 + 512)
			for b.Loop() {
				if err := Write(io.Discard, Options{Format: f, ModTime: testTime}, entries); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
