package recipes

import "time"

// DefaultBase is the base a recipe gets when it names none: built from
// packages, no download needed, Debian's current stable release.
const DefaultBase = "debian:" + DefaultRelease

// Default fills every unset field with its documented default. It is pure:
// no I/O, no validation.
func Default(r *Recipe) {
	if r.Kind == "" {
		r.Kind = "Recipe"
	}
	if r.Base == "" {
		r.Base = DefaultBase
	}
	if r.Bake.Mode == "" {
		r.Bake.Mode = "auto"
	}
	for i := range r.Bake.Units {
		if r.Bake.Units[i].Enable == nil {
			t := true
			r.Bake.Units[i].Enable = &t
		}
	}
	if r.Boot.Hostname == "" {
		r.Boot.Hostname = "{instance}"
	}
	for i := range r.Checks {
		defaultCheck(&r.Checks[i])
	}
	d := &r.Disk
	if d.Size == 0 {
		d.Size = 4 << 30
	}
	if d.Format == "" {
		d.Format = "qcow2"
	}
	if d.Compression == "" {
		d.Compression = "zstd"
		if d.Format == "raw" {
			d.Compression = "none"
		}
	}
	if d.Firmware == nil {
		d.Firmware = []string{"bios", "uefi"}
	}
}

func defaultCheck(c *Check) {
	if c.Timeout == 0 {
		c.Timeout = Duration(2 * time.Minute)
	}
	if c.HTTP != nil {
		if c.HTTP.Path == "" {
			c.HTTP.Path = "/"
		}
		if c.HTTP.Status == 0 {
			c.HTTP.Status = 200
		}
	}
	if c.Name == "" {
		c.Name = c.describe()
	}
}

// describe is a check's default name: "http :80/healthz", "tcp :5432", ...
func (c Check) describe() string {
	switch {
	case c.HTTP != nil:
		return "http :" + itoa(c.HTTP.Port) + c.HTTP.Path
	case c.TCP != nil:
		return "tcp :" + itoa(c.TCP.Port)
	case c.Command != nil:
		return "command " + truncate(c.Command.Run.String(), 40)
	}
	return "check"
}
