package cloudinit

import (
	"strings"
	"testing"
)

func TestValidateUserData(t *testing.T) {
	cases := []struct {
		name    string
		doc     string
		pointer string // "" means valid
		message string
	}{
		{"valid", Header + "hostname: web\nruncmd:\n  - [echo, hi]\n", "", ""},
		{"unknown top-level key", Header + "hostname: web\ncron: {}\n", "", "cron"},
		{"wrong type", Header + "write_files:\n  - path: /x\n    permissions: 420\n", "/write_files/0/permissions", "string"},
		{"missing required", Header + "write_files:\n  - content: x\n", "/write_files/0", "path"},
		{"bad power state", Header + "power_state: {mode: explode}\n", "/power_state/mode", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps, err := Upstream.ValidateUserData([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if c.message == "" && c.pointer == "" {
				if len(ps) != 0 {
					t.Fatalf("valid document rejected: %v", ps)
				}
				return
			}
			if len(ps) == 0 {
				t.Fatalf("invalid document accepted")
			}
			found := false
			for _, p := range ps {
				if strings.HasPrefix(p.Pointer, c.pointer) && strings.Contains(p.Message, c.message) {
					found = true
				}
			}
			if !found {
				t.Fatalf("want a problem at %q mentioning %q, got %v", c.pointer, c.message, ps)
			}
		})
	}
}

func TestValidateUserDataNotCloudConfig(t *testing.T) {
	for _, doc := range []string{"hostname: x\n", Header + "- a\n", Header + "a: [\n"} {
		if _, err := Upstream.ValidateUserData([]byte(doc)); err == nil {
			t.Errorf("%q: want an error", doc)
		}
	}
}

func TestIgnoredKeys(t *testing.T) {
	doc := []byte(Header + "hostname: web\ncron: {}\nzzz_new_module: 1\n")
	got, err := Debian12.IgnoredKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "cron,zzz_new_module" {
		t.Fatalf("IgnoredKeys = %v", got)
	}
	// The old schema accepts what the guest would ignore: that is the trap.
	if ps, _ := Debian12.ValidateUserData(doc); len(ps) != 0 {
		t.Fatalf("22.4 schema rejected unknown key, expected it to accept: %v", ps)
	}
}

func TestSchemaFor(t *testing.T) {
	if SchemaFor("22.4.2") != Debian12 || SchemaFor("25.1.4") != Upstream || SchemaFor("") != Upstream {
		t.Fatal("SchemaFor picked the wrong schema")
	}
}

func TestValidateNetwork(t *testing.T) {
	good, err := Network{Version: 2, Ethernets: map[string]Ethernet{"eth0": {DHCP4: Bool(true)}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := ValidateNetwork(good); err != nil || len(ps) != 0 {
		t.Fatalf("valid network-config rejected: %v %v", ps, err)
	}
	if ps, _ := ValidateNetwork([]byte("version: 2\nethernets:\n  eth0:\n    dhcp4: maybe\n")); len(ps) == 0 {
		t.Fatal("bad dhcp4 accepted")
	}
}
