package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// Write validates m against the schema and writes it to path atomically,
// as indented JSON. SchemaVersion is set; nil lists are written as [].
func Write(path string, m *Manifest) error {
	b, err := Marshal(m)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", path, err)
	}
	return atomicfile.Write(path, b, 0o644)
}

// Marshal is the JSON Write writes, validated against the schema.
func Marshal(m *Manifest) ([]byte, error) {
	c := *m
	c.SchemaVersion = SchemaVersion
	c.Packages = orEmpty(c.Packages)
	c.Artifacts = orEmpty(c.Artifacts)
	c.Checks = orEmpty(c.Checks)
	c.Recipe.Roles = orEmpty(c.Recipe.Roles)
	c.Disk.Firmware = orEmpty(c.Disk.Firmware)
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := Validate(b); err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Read reads the manifest at path: the current layout, or the previous one
// (converted); a newer layout or one that fails the schema is an error
// that says what to do.
func Read(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes manifest JSON (see Read).
func Parse(b []byte) (*Manifest, error) {
	var head struct {
		SchemaVersion *int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("not a kiln manifest: %v", err)
	}
	switch {
	case head.SchemaVersion == nil:
		return parseV0(b)
	case *head.SchemaVersion == SchemaVersion:
	case *head.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("schemaVersion %d is newer than this kiln reads (%d): use a newer kiln", *head.SchemaVersion, SchemaVersion)
	default:
		return nil, fmt.Errorf("schemaVersion %d is not a layout kiln knows", *head.SchemaVersion)
	}
	if err := Validate(b); err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// v0 is the layout kiln wrote before schemaVersion: the same keys but for
// checks (recipe structs with Go field names, nanosecond timeouts) and
// build (seconds as a number).
type v0 struct {
	Manifest
	Checks []struct {
		Name string
		HTTP *struct {
			Port     int
			Path     string
			Status   int
			Contains string
		}
		TCP     *struct{ Port int }
		Command *struct {
			Run struct {
				Shell string
				Argv  []string
			}
			ExitCode int
			Contains string
		}
		Timeout int64
	} `json:"checks"`
	Build struct {
		Mode            string  `json:"mode"`
		Seconds         float64 `json:"seconds"`
		SourceDateEpoch int64   `json:"sourceDateEpoch"`
	} `json:"build"`
}

func parseV0(b []byte) (*Manifest, error) {
	var old v0
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("a manifest without schemaVersion, and not one an earlier kiln wrote either (%v): bake the image again", err)
	}
	m := old.Manifest
	if m.Kiln.ImageLayout == "" || len(m.Artifacts) == 0 {
		return nil, fmt.Errorf("a manifest without schemaVersion, and not one an earlier kiln wrote either (no kiln.imageLayout or artifacts): bake the image again")
	}
	m.SchemaVersion = SchemaVersion
	m.Checks = nil
	for _, c := range old.Checks {
		nc := Check{Name: c.Name, Timeout: Duration(c.Timeout)}
		switch {
		case c.HTTP != nil:
			nc.HTTP = &HTTPCheck{Port: c.HTTP.Port, Path: c.HTTP.Path, Status: c.HTTP.Status, Contains: c.HTTP.Contains}
		case c.TCP != nil:
			nc.TCP = &TCPCheck{Port: c.TCP.Port}
		case c.Command != nil:
			run := c.Command.Run.Shell
			if c.Command.Run.Argv != nil {
				run = shellJoin(c.Command.Run.Argv)
			}
			nc.Command = &CommandCheck{Run: run, ExitCode: c.Command.ExitCode, Contains: c.Command.Contains}
		}
		m.Checks = append(m.Checks, nc)
	}
	m.OS.Systemd = m.Package("systemd")
	m.Build = Build{Mode: old.Build.Mode, Duration: Duration(time.Duration(old.Build.Seconds * float64(time.Second))), SourceDateEpoch: old.Build.SourceDateEpoch}
	return &m, nil
}

// shellJoin quotes argv for /bin/sh.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'"'"'`) + "'"
		}
	}
	return strings.Join(q, " ")
}
