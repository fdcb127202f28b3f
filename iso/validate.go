package iso

import (
	"fmt"
	"slices"
	"strings"
)

// forbiddenNameChars cannot appear in Joliet names (ECMA-119 plus the
// Joliet spec: * / : ; ? \) or in VFAT long names (" * / : < > ? \ |).
const forbiddenNameChars = `/\:*?"<>|;`

// checkName reports why name cannot be stored in both ISO9660 (Rock Ridge
// and Joliet) and VFAT with its exact spelling, or nil if it can.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("iso: entry name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("iso: entry %q: name is %d bytes, longer than %d", name, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			return fmt.Errorf("iso: entry %q: name contains '/': seeds hold a flat root directory", name)
		case c == 0:
			return fmt.Errorf("iso: entry %q: name contains NUL", name)
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("iso: entry %q: name contains non-printable or non-ASCII byte 0x%02x", name, c)
		case strings.IndexByte(forbiddenNameChars, c) >= 0:
			return fmt.Errorf("iso: entry %q: name contains %q, which Joliet and VFAT cannot store", name, string(c))
		}
	}
	switch {
	case name[0] == ' ' || name[len(name)-1] == ' ':
		return fmt.Errorf("iso: entry %q: name starts or ends with a space", name)
	case name[len(name)-1] == '.':
		// Covers "." and ".."; Linux's vfat and Joliet code strip
		// trailing dots, so the name would not survive.
		return fmt.Errorf("iso: entry %q: name ends with '.'", name)
	}
	return nil
}

// checkEntries validates every entry and returns a copy sorted by name.
// Names must be unique ignoring ASCII case, because VFAT (and Windows'
// Joliet) compare them that way.
func checkEntries(entries []Entry) ([]Entry, error) {
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("iso: %d entries, more than %d", len(entries), MaxEntries)
	}
	var total int64
	seen := make(map[string]string, len(entries))
	for _, e := range entries {
		if err := checkName(e.Name); err != nil {
			return nil, err
		}
		fold := strings.ToLower(e.Name)
		if prev, ok := seen[fold]; ok {
			if prev == e.Name {
				return nil, fmt.Errorf("iso: duplicate entry name %q", e.Name)
			}
			return nil, fmt.Errorf("iso: entry names %q and %q differ only in case", prev, e.Name)
		}
		seen[fold] = e.Name
		total += int64(len(e.Data))
		if total > MaxTotalSize {
			return nil, fmt.Errorf("iso: entry %q: total data exceeds %d bytes", e.Name, MaxTotalSize)
		}
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return sorted, nil
}

// checkISOLabel accepts 1-32 bytes of letters, digits, '_', '-' and '.'.
// Lower case is allowed (against ECMA-119's d-characters) because
// genisoimage -volid cidata writes it that way and cloud-init looks for it.
func checkISOLabel(label string) error {
	if len(label) > 32 {
		return fmt.Errorf("iso: label %q is %d bytes, longer than 32", label, len(label))
	}
	for i := 0; i < len(label); i++ {
		if !isLabelChar(label[i]) {
			return fmt.Errorf("iso: label %q: invalid character %q (allowed: A-Z a-z 0-9 _ - .)", label, string(label[i]))
		}
	}
	return nil
}

// checkFATLabel accepts 1-11 bytes of letters, digits, '_' and '-' and
// returns the label in upper case, as DOS stores it.
func checkFATLabel(label string) (string, error) {
	if len(label) > 11 {
		return "", fmt.Errorf("iso: label %q is %d bytes, longer than 11 (FAT limit)", label, len(label))
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; c == '.' || !isLabelChar(c) {
			return "", fmt.Errorf("iso: label %q: invalid character %q (allowed on FAT: A-Z a-z 0-9 _ -)", label, string(c))
		}
	}
	return strings.ToUpper(label), nil
}

func isLabelChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}
