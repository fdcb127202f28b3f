package recipes

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
)

func init() {
	registerRole(roleDef{
		name:    "database",
		summary: "PostgreSQL from the distribution: listen address, databases, roles with passwords from seed secrets, pg_hba rules, an optional data disk and scheduled dumps",
		new: func() RoleParams {
			return &Database{Listen: []string{"*"}, Port: 5432, HBA: []HBARule{
				{Type: "host", Database: "all", User: "all", Address: "0.0.0.0/0", Method: "scram-sha-256"},
				{Type: "host", Database: "all", User: "all", Address: "::/0", Method: "scram-sha-256"},
			}}
		},
	})
}

// Database is the database role (PostgreSQL).
type Database struct {
	Listen    []string          `yaml:"listen" doc:"addresses to listen on (listen_addresses); * for all"`
	Port      int               `yaml:"port" doc:"TCP port"`
	Databases []DBDatabase      `yaml:"databases" doc:"databases to create"`
	Users     []DBUser          `yaml:"users" doc:"roles to create; passwords come from seed secrets"`
	HBA       []HBARule         `yaml:"hba" doc:"pg_hba.conf host rules, after the local peer rules kiln always keeps"`
	DataDisk  *DataDiskParams   `yaml:"dataDisk" doc:"an extra disk formatted on first boot and mounted at /var/lib/postgresql"`
	Dumps     *DumpParams       `yaml:"dumps" doc:"scheduled pg_dumpall of every database"`
	Settings  map[string]string `yaml:"settings" doc:"extra postgresql.conf settings, e.g. shared_buffers: 128MB"`
}

// DBDatabase is a database to create.
type DBDatabase struct {
	Name  string `yaml:"name" doc:"database name"`
	Owner string `yaml:"owner" doc:"owning role; default postgres"`
}

// DBUser is a PostgreSQL role to create.
type DBUser struct {
	Name      string `yaml:"name" doc:"role name"`
	Password  Secret `yaml:"password" doc:"env:NAME or file:PATH holding the password (resolved when the seed is written; only a SCRAM verifier reaches the VM), or a SCRAM-SHA-256$... verifier"`
	Superuser bool   `yaml:"superuser" doc:"grant SUPERUSER"`
	CreateDB  bool   `yaml:"createdb" doc:"grant CREATEDB"`
}

// HBARule is one pg_hba.conf line.
type HBARule struct {
	Type     string `yaml:"type" doc:"host, hostssl or hostnossl"`
	Database string `yaml:"database" doc:"database name or all"`
	User     string `yaml:"user" doc:"role name or all"`
	Address  string `yaml:"address" doc:"client network in CIDR form"`
	Method   string `yaml:"method" doc:"scram-sha-256, md5 (discouraged), reject, trust (discouraged)"`
}

// DataDiskParams is the database's data disk.
type DataDiskParams struct {
	Device     string `yaml:"device" doc:"block device; default /dev/vdb"`
	Filesystem string `yaml:"filesystem" doc:"ext4 or xfs; default ext4"`
}

// DumpParams schedules dumps.
type DumpParams struct {
	Schedule string `yaml:"schedule" doc:"cron or systemd calendar syntax; default daily"`
	Dir      string `yaml:"dir" doc:"where dumps go; default /var/backups/postgresql"`
	Keep     int    `yaml:"keep" doc:"how many dumps to keep; default 7"`
}

var (
	pgIdentRE  = lazyre.New(`^[a-z_][a-z0-9_]{0,62}$`)
	scramRE    = lazyre.New(`^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$`)
	pgSettingR = lazyre.New(`^[a-z_][a-z0-9_.]*$`)
	deviceRE   = lazyre.New(`^/dev/[a-z0-9/_-]+$`)
)

func (d *Database) validate(v *validator) {
	if len(d.Listen) == 0 {
		v.errorf("listen", "list at least one address, or * for all")
	}
	for i, a := range d.Listen {
		if a == "*" || a == "localhost" {
			continue
		}
		if _, err := netip.ParseAddr(a); err != nil {
			v.errorf(fmt.Sprintf("listen[%d]", i), "invalid address %q (want an IP address, localhost or *)", a)
		}
	}
	v.port("port", d.Port)
	users := map[string]bool{"postgres": true}
	for i, u := range d.Users {
		p := fmt.Sprintf("users[%d]", i)
		if !pgIdentRE.MatchString(u.Name) {
			v.errorf(p+".name", "invalid role name %q (lower-case letters, digits and _)", u.Name)
		}
		if users[u.Name] {
			v.errorf(p+".name", "role %q is defined twice (or is the built-in postgres)", u.Name)
		}
		users[u.Name] = true
		switch _, _, ref := u.Password.Ref(); {
		case u.Password == "":
			v.errorf(p+".password", "missing required field password (env:NAME or file:PATH)")
		case ref:
			v.secretRef(p+".password", u.Password)
		case !scramRE.MatchString(string(u.Password)):
			v.errorf(p+".password", "plain-text passwords are refused; give env:NAME or file:PATH (kiln sends only a SCRAM verifier to the VM), "+
				"or a SCRAM-SHA-256$... verifier")
		}
	}
	dbs := map[string]bool{}
	for i, db := range d.Databases {
		p := fmt.Sprintf("databases[%d]", i)
		if !pgIdentRE.MatchString(db.Name) {
			v.errorf(p+".name", "invalid database name %q (lower-case letters, digits and _)", db.Name)
		}
		if dbs[db.Name] {
			v.errorf(p+".name", "database %q is defined twice", db.Name)
		}
		dbs[db.Name] = true
		if db.Owner != "" && !users[db.Owner] {
			v.errorf(p+".owner", "owner %q is not one of the roles in users", db.Owner)
		}
	}
	for i, h := range d.HBA {
		p := fmt.Sprintf("hba[%d]", i)
		switch h.Type {
		case "host", "hostssl", "hostnossl":
		default:
			v.errorf(p+".type", "unknown type %q (want host, hostssl or hostnossl)", h.Type)
		}
		switch h.Method {
		case "scram-sha-256", "md5", "reject", "trust", "password":
		default:
			v.errorf(p+".method", "unknown method %q (want scram-sha-256, md5, reject or trust)", h.Method)
		}
		if _, err := netip.ParsePrefix(h.Address); err != nil {
			v.errorf(p+".address", "invalid network %q (want CIDR like 10.0.0.0/8)", h.Address)
		}
		if h.Database == "" || h.User == "" {
			v.errorf(p, "database and user are required (use all for any)")
		}
	}
	if dd := d.DataDisk; dd != nil {
		if dd.Device != "" && !deviceRE.MatchString(dd.Device) {
			v.errorf("dataDisk.device", "invalid device %q (want /dev/vdb or similar)", dd.Device)
		}
		if dd.Filesystem != "" && dd.Filesystem != "ext4" && dd.Filesystem != "xfs" {
			v.errorf("dataDisk.filesystem", "unsupported filesystem %q (want ext4 or xfs)", dd.Filesystem)
		}
	}
	if dp := d.Dumps; dp != nil {
		if dp.Schedule != "" {
			if _, err := OnCalendar(dp.Schedule); err != nil {
				v.errorf("dumps.schedule", "%v", err)
			}
		}
		if dp.Dir != "" {
			v.guestPath("dumps.dir", dp.Dir)
		}
		if dp.Keep < 0 {
			v.errorf("dumps.keep", "must not be negative")
		}
	}
	for k := range d.Settings {
		if !pgSettingR.MatchString(k) {
			v.errorf("settings."+k, "invalid setting name %q", k)
		}
	}
}

func (d *Database) contribute(c *contribution) error {
	// No cluster at package install time: the first boot creates it, on the
	// data disk when there is one, so the image carries no database files.
	c.file("/etc/postgresql-common/createcluster.d/50-kiln.conf", 0o644, "# Written by kiln (role database)\ncreate_main_cluster = false\n")
	c.packages("postgresql", "postgresql-client")
	c.file("/usr/local/lib/kiln/database-setup", 0o755, asset("database-setup"))
	c.file("/usr/local/lib/kiln/record-result", 0o755, asset("record-result"))

	var conf strings.Builder
	conf.WriteString("# Written by kiln (role database). Edit the recipe, not this file.\n")
	fmt.Fprintf(&conf, "listen_addresses = '%s'\nport = %d\npassword_encryption = scram-sha-256\n", strings.Join(d.Listen, ","), d.Port)
	for _, k := range sortedKeys(d.Settings) {
		fmt.Fprintf(&conf, "%s = '%s'\n", k, strings.ReplaceAll(d.Settings[k], "'", "''"))
	}
	c.file("/etc/kiln/database/postgresql.conf", 0o644, conf.String())

	var hba strings.Builder
	hba.WriteString("# Written by kiln (role database). Edit the recipe, not this file.\n")
	hba.WriteString("local   all             postgres                                peer\n")
	hba.WriteString("local   all             all                                     peer\n")
	hba.WriteString("host    all             all             127.0.0.1/32            scram-sha-256\n")
	hba.WriteString("host    all             all             ::1/128                 scram-sha-256\n")
	for _, h := range d.HBA {
		fmt.Fprintf(&hba, "%-7s %-15s %-15s %-23s %s\n", h.Type, h.Database, h.User, h.Address, h.Method)
	}
	c.file("/etc/kiln/database/pg_hba.conf", 0o644, hba.String())

	if dd := d.DataDisk; dd != nil {
		dev, fs := dd.Device, dd.Filesystem
		if dev == "" {
			dev = "/dev/vdb"
		}
		if fs == "" {
			fs = "ext4"
		}
		c.plan.Boot.DataDisks = append(c.plan.Boot.DataDisks, DataDisk{Device: dev, Filesystem: fs, Label: "pgdata", MountPoint: "/var/lib/postgresql", Origin: c.origin})
	}
	if dp := d.Dumps; dp != nil {
		sched, dir, keep := dp.Schedule, dp.Dir, dp.Keep
		if sched == "" {
			sched = "daily"
		}
		if dir == "" {
			dir = "/var/backups/postgresql"
		}
		if keep == 0 {
			keep = 7
		}
		cal, err := OnCalendar(sched)
		if err != nil {
			return err
		}
		c.file("/usr/local/lib/kiln/pg-dump", 0o755, asset("pg-dump"))
		data := map[string]any{"Dir": dir, "Keep": keep, "Schedule": sched, "OnCalendar": cal}
		svc, err := render("pg-dump.service", data)
		if err != nil {
			return err
		}
		timer, err := render("pg-dump.timer", data)
		if err != nil {
			return err
		}
		c.unit("kiln-pg-dump.service", svc, false)
		c.unit("kiln-pg-dump.timer", timer, true)
	}

	users, dbs := d.Users, d.Databases
	c.bootFile(BootFile{Path: "/etc/kiln/database/setup.sql", Mode: 0o600, Owner: "root:root",
		Render: func(resolve Resolver) ([]byte, error) { return setupSQL(users, dbs, resolve) }})
	c.bootCommand(Command{Argv: []string{"/usr/local/lib/kiln/database-setup"}})
	for _, ch := range d.checks() {
		c.check(ch)
	}
	return nil
}

// checks follow listen: a server on every address is probed from the host
// and, with pg_isready, on loopback; one on particular addresses only inside
// the guest, with pg_isready at each of them.
func (d *Database) checks() []Check {
	ready := func(name, addr string) Check {
		return Check{Name: name, Command: &CommandCheck{Run: Command{Argv: []string{"pg_isready", "-q", "-h", localAddr(addr), "-p", fmt.Sprint(d.Port)}}}}
	}
	for _, a := range d.Listen {
		if listensEverywhere(a, false) {
			return []Check{{Name: "postgresql port", TCP: &TCPCheck{Port: d.Port}}, ready("postgresql ready", a)}
		}
	}
	var addrs []string
	for _, a := range d.Listen {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 1 {
		return []Check{ready("postgresql ready", addrs[0])}
	}
	var out []Check
	for _, a := range addrs {
		out = append(out, ready("postgresql ready on "+a, a))
	}
	return out
}

// setupSQL creates roles and databases idempotently. Passwords are turned
// into SCRAM verifiers here, on the host: the VM never sees them.
func setupSQL(users []DBUser, dbs []DBDatabase, resolve Resolver) ([]byte, error) {
	var b strings.Builder
	b.WriteString("-- Written by kiln (role database) from the seed: password verifiers only.\n")
	for _, u := range users {
		verifier := string(u.Password)
		if _, _, ref := u.Password.Ref(); ref {
			pw, err := resolveLine(resolve, u.Password)
			if err != nil {
				return nil, fmt.Errorf("users %s: %v", u.Name, err)
			}
			if pw == "" {
				return nil, fmt.Errorf("users %s: %s is empty", u.Name, u.Password)
			}
			verifier = scramVerifier(pw, u.Name)
		}
		attrs := "LOGIN"
		if u.Superuser {
			attrs += " SUPERUSER"
		}
		if u.CreateDB {
			attrs += " CREATEDB"
		}
		fmt.Fprintf(&b, "SELECT format('CREATE ROLE %%I', %s) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)\\gexec\n", sqlString(u.Name), sqlString(u.Name))
		fmt.Fprintf(&b, "ALTER ROLE %s WITH %s PASSWORD %s;\n", sqlIdent(u.Name), attrs, sqlString(verifier))
	}
	for _, db := range dbs {
		owner := db.Owner
		if owner == "" {
			owner = "postgres"
		}
		fmt.Fprintf(&b, "SELECT format('CREATE DATABASE %%I OWNER %%I', %s, %s) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = %s)\\gexec\n",
			sqlString(db.Name), sqlString(owner), sqlString(db.Name))
	}
	return []byte(b.String()), nil
}

// scramVerifier computes PostgreSQL's SCRAM-SHA-256 verifier (RFC 5802/7677).
// The salt is derived from the password and role so seeds are reproducible;
// it still differs per role and per password.
func scramVerifier(password, role string) string {
	const iterations = 4096
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write([]byte("kiln-scram-salt\x00" + role))
	salt := mac.Sum(nil)[:16]
	_, stored, server := scramKeys(password, salt, iterations)
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored), enc(server))
}

// scramKeys derives SCRAM's ClientKey, StoredKey and ServerKey.
func scramKeys(password string, salt []byte, iterations int) (clientKey, storedKey, serverKey []byte) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		panic(err) // only for invalid key lengths, which 32 is not
	}
	h := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey = h(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return clientKey, stored[:], h(salted, "Server Key")
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
