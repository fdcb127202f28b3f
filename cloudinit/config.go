package cloudinit

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Config is a cloud-config document: the subset of cloud-init's modules kiln
// renders, in cloud-init's own key names. Extra carries keys kiln does not
// model (a recipe's raw cloudConfig escape hatch); they are merged at the top
// level and validated by the schema like the rest.
type Config struct {
	Hostname         string `yaml:"hostname,omitempty"`
	FQDN             string `yaml:"fqdn,omitempty"`
	PreserveHostname *bool  `yaml:"preserve_hostname,omitempty"`
	ManageEtcHosts   *bool  `yaml:"manage_etc_hosts,omitempty"`
	Timezone         string `yaml:"timezone,omitempty"`
	Locale           string `yaml:"locale,omitempty"`

	Users             []User   `yaml:"users,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	SSHPasswordAuth   *bool    `yaml:"ssh_pwauth,omitempty"`
	DisableRoot       *bool    `yaml:"disable_root,omitempty"`
	SSHGenKeyTypes    []string `yaml:"ssh_genkeytypes,omitempty"`
	SSHDeleteKeys     *bool    `yaml:"ssh_deletekeys,omitempty"`

	PackageUpdate  *bool    `yaml:"package_update,omitempty"`
	PackageUpgrade *bool    `yaml:"package_upgrade,omitempty"`
	Packages       []string `yaml:"packages,omitempty"`

	DiskSetup  map[string]DiskSetup `yaml:"disk_setup,omitempty"`
	FSSetup    []FSSetup            `yaml:"fs_setup,omitempty"`
	Mounts     [][]string           `yaml:"mounts,omitempty"`
	WriteFiles []File               `yaml:"write_files,omitempty"`
	Bootcmd    []Command            `yaml:"bootcmd,omitempty"`
	Runcmd     []Command            `yaml:"runcmd,omitempty"`

	PowerState   *PowerState `yaml:"power_state,omitempty"`
	FinalMessage string      `yaml:"final_message,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// User is one entry of cloud-config `users`. The special entry that keeps the
// distribution's default user is written with Default set.
type User struct {
	Default           bool     `yaml:"-"`
	Name              string   `yaml:"name,omitempty"`
	Gecos             string   `yaml:"gecos,omitempty"`
	Groups            string   `yaml:"groups,omitempty"`
	PrimaryGroup      string   `yaml:"primary_group,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
	Homedir           string   `yaml:"homedir,omitempty"`
	Sudo              string   `yaml:"sudo,omitempty"`
	System            bool     `yaml:"system,omitempty"`
	NoCreateHome      bool     `yaml:"no_create_home,omitempty"`
	UID               int      `yaml:"uid,omitempty"`
	LockPasswd        *bool    `yaml:"lock_passwd,omitempty"`
	Passwd            string   `yaml:"passwd,omitempty"` // a crypt(3) hash, never plain text
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
}

// MarshalYAML writes the default user as the bare string "default".
func (u User) MarshalYAML() (any, error) {
	if u.Default {
		return "default", nil
	}
	type plain User
	return plain(u), nil
}

// File is one entry of cloud-config `write_files`.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content,omitempty"`
	Encoding    string `yaml:"encoding,omitempty"`
	Owner       string `yaml:"owner,omitempty"`
	Permissions string `yaml:"permissions,omitempty"`
	Append      bool   `yaml:"append,omitempty"`
	Defer       bool   `yaml:"defer,omitempty"`
}

// Command is a runcmd/bootcmd entry: either a shell string or an argv list
// (which cloud-init runs without a shell).
type Command struct {
	Shell string
	Argv  []string
}

// MarshalYAML writes a string for shell commands and a list for argv.
func (c Command) MarshalYAML() (any, error) {
	if c.Argv != nil {
		return c.Argv, nil
	}
	return c.Shell, nil
}

// UnmarshalYAML reads either form back.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Decode(&c.Shell)
	case yaml.SequenceNode:
		return n.Decode(&c.Argv)
	}
	return fmt.Errorf("line %d: a command is a string or a list of strings", n.Line)
}

// DiskSetup is one device entry of cloud-config `disk_setup`.
type DiskSetup struct {
	TableType string `yaml:"table_type,omitempty"`
	Layout    bool   `yaml:"layout"`
	Overwrite bool   `yaml:"overwrite"`
}

// FSSetup is one entry of cloud-config `fs_setup`.
type FSSetup struct {
	Label      string `yaml:"label,omitempty"`
	Filesystem string `yaml:"filesystem"`
	Device     string `yaml:"device"`
	Partition  string `yaml:"partition,omitempty"`
	Overwrite  bool   `yaml:"overwrite,omitempty"`
}

// PowerState is cloud-config `power_state`: what cloud-init does once the
// final stage is done.
type PowerState struct {
	Mode      string `yaml:"mode"` // poweroff, reboot or halt
	Delay     string `yaml:"delay,omitempty"`
	Message   string `yaml:"message,omitempty"`
	Timeout   int    `yaml:"timeout,omitempty"`
	Condition *bool  `yaml:"condition,omitempty"`
}

// Bool returns a pointer to b, for the optional fields above.
func Bool(b bool) *bool { return &b }
