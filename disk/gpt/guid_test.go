package gpt

import (
	"strings"
	"testing"
)

func TestGUIDText(t *testing.T) {
	g := TypeEFISystem
	// On disk the first three groups are little-endian.
	want := GUID{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}
	if g != want {
		t.Errorf("bytes = % X", g[:])
	}
	if s := g.String(); s != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" {
		t.Errorf("String = %s", s)
	}
	lower, err := ParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	if err != nil || lower != g {
		t.Errorf("ParseGUID(lower) = %v, %v", lower, err)
	}
	for _, bad := range []string{"", "C12A7328F81F11D2BA4B00A0C93EC93B", "C12A7328-F81F-11D2-BA4B-00A0C93EC93", "X12A7328-F81F-11D2-BA4B-00A0C93EC93B", "C12A732-8F81F-11D2-BA4B-00A0C93EC93B"} {
		if _, err := ParseGUID(bad); err == nil || !strings.HasPrefix(err.Error(), "gpt: ") {
			t.Errorf("ParseGUID(%q) error = %v", bad, err)
		}
	}
}

func TestDeriveGUID(t *testing.T) {
	a := DeriveGUID("kiln", "web", "root")
	if a != DeriveGUID("kiln", "web", "root") {
		t.Error("not deterministic")
	}
	// Length prefixes keep part boundaries significant.
	if a == DeriveGUID("kilnweb", "root") || a == DeriveGUID("kiln", "webroot") {
		t.Error("different parts give the same GUID")
	}
	s := a.String()
	if s[14] != '4' || !strings.ContainsRune("89AB", rune(s[19])) {
		t.Errorf("%s is not shaped like an RFC 4122 version 4 UUID", s)
	}
	if back, err := ParseGUID(s); err != nil || back != a {
		t.Errorf("ParseGUID(String()) = %v, %v", back, err)
	}
}
