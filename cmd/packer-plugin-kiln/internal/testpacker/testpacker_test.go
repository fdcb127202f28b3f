package testpacker

import (
	"context"
	"strings"
	"testing"
)

func TestBinary(t *testing.T) {
	p := New(t)
	out, err := p.Run(context.Background(), "", "version")
	if err != nil || !strings.Contains(out, strings.TrimPrefix(Version, "v")) {
		t.Fatalf("packer version: %v\n%s", err, out)
	}
}
