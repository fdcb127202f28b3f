package recipes

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func loadPlan(t *testing.T, files map[string]string) *Plan {
	t.Helper()
	dir := writeFiles(t, files)
	p, err := LoadPlan(filepath.Join(dir, "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const secretsRecipe = header + `roles:
  - database:
      users: [{name: app, password: env:DB_PASSWORD}]
      databases: [{name: appdb, owner: app}]
  - app-host:
      command: /bin/app
      secretEnv: {API_TOKEN: file:token.txt}
bake:
  packages: [htop]
boot:
  users:
    - {name: ops, passwordHash: env:OPS_HASH, sudo: true}
  files:
    - {path: /etc/app/key, secret: env:APP_KEY}
`

func TestSeedSecrets(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": secretsRecipe, "token.txt": "tok-3141\n"})
	secrets := map[string]string{
		"env:DB_PASSWORD": "db-pass-2718", "env:OPS_HASH": "$6$salt$hashhashhash", "env:APP_KEY": "key-1618",
		"file:token.txt": "tok-3141\n",
	}
	boot, err := p.Seed(Instance{Name: "web-1"}, StageBoot, MapResolver(secrets))
	if err != nil {
		t.Fatal(err)
	}
	if !boot.HoldsSecrets {
		t.Error("boot seed with secrets not marked HoldsSecrets")
	}
	ud := string(boot.UserData)
	for _, want := range []string{"$6$salt$hashhashhash", "key-1618", `API_TOKEN="tok-3141"`, "SCRAM-SHA-256$4096:"} {
		if !strings.Contains(ud, want) {
			t.Errorf("boot user-data lacks %q", want)
		}
	}
	// The database password itself never leaves the host: only its verifier.
	if strings.Contains(ud, "db-pass-2718") {
		t.Error("database password in plain text in the seed")
	}
	// Nothing secret is baked: the bake stage has no secret at all, and the
	// digests that name the image do not depend on secret values.
	bake, err := p.Seed(Instance{}, StageBake, MapResolver(secrets))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secrets {
		if strings.Contains(string(bake.UserData), strings.TrimSpace(v)) {
			t.Errorf("secret %q in the bake stage", v)
		}
	}
	if bake.HoldsSecrets {
		t.Error("bake stage marked as holding secrets")
	}
	if strings.Contains(p.ImageKey+p.Digest, "db-pass") {
		t.Error("secret in a digest")
	}
}

func TestSeedMissingSecret(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": secretsRecipe, "token.txt": "x"})
	_, err := p.Seed(Instance{}, StageBoot, MapResolver(map[string]string{}))
	if err == nil || !strings.Contains(err.Error(), "is not set") {
		t.Fatalf("want a missing-secret error, got %v", err)
	}
	if !strings.Contains(err.Error(), "r.yaml:") {
		t.Errorf("error does not name the recipe: %v", err)
	}
}

func TestSeedRefusesNonHashFromEnv(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + "boot:\n  users:\n    - {name: ops, passwordHash: env:H}\n"})
	_, err := p.Seed(Instance{}, StageBoot, MapResolver(map[string]string{"env:H": "hunter2"}))
	if err == nil || !strings.Contains(err.Error(), "does not hold a crypt(3) hash") {
		t.Fatalf("plain password through env accepted: %v", err)
	}
}

func TestEnvResolver(t *testing.T) {
	dir := writeFiles(t, map[string]string{"r.yaml": header, "s/pw": "from-file\n"})
	r, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TEST_SECRET", "from-env")
	res := r.EnvResolver()
	if b, err := res("env:KILN_TEST_SECRET"); err != nil || string(b) != "from-env" {
		t.Errorf("env: %q %v", b, err)
	}
	if b, err := res("file:s/pw"); err != nil || string(b) != "from-file\n" {
		t.Errorf("file: %q %v", b, err)
	}
	if _, err := res("env:KILN_TEST_UNSET_VARIABLE"); err == nil {
		t.Error("unset env resolved")
	}
	if _, err := res("file:../../etc/passwd"); err == nil || !strings.Contains(err.Error(), "out of the recipe's directory") {
		t.Errorf("escaping file resolved: %v", err)
	}
}

func TestSeedDeterministic(t *testing.T) {
	files := map[string]string{"r.yaml": secretsRecipe, "token.txt": "t"}
	res := MapResolver(map[string]string{"env:DB_PASSWORD": "p", "env:OPS_HASH": "$6$a$b", "env:APP_KEY": "k", "file:token.txt": "t"})
	a, err := loadPlan(t, files).Seed(Instance{Name: "x"}, StageFull, res)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loadPlan(t, files).Seed(Instance{Name: "x"}, StageFull, res)
	c, _ := loadPlan(t, files).Seed(Instance{Name: "y"}, StageFull, res)
	if !bytes.Equal(a.UserData, b.UserData) || !bytes.Equal(a.MetaData, b.MetaData) || a.InstanceID != b.InstanceID {
		t.Error("same recipe and instance gave different seeds")
	}
	if a.InstanceID == c.InstanceID {
		t.Error("two instances share an instance-id")
	}
}

func TestSeedDocuments(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + `boot:
  hostname: "web-{index}"
  timezone: Europe/Berlin
  users: [{name: ops, sudo: true, sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEqOD1s2cyGbC8CWoYxZEOW94WiE3LXHO2gWvaEHCgCd x"]}]
  network:
    ethernets:
      eth0: {addresses: [10.0.0.5/24], gateway4: 10.0.0.1, nameservers: {addresses: [10.0.0.1]}}
`})
	s, err := p.Seed(Instance{Name: "web-7", Index: 7}, StageBoot, PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]string
	if err := yaml.Unmarshal(s.MetaData, &md); err != nil {
		t.Fatal(err)
	}
	// dsmode local: cloud-init's local stage applies the whole seed.
	if md["local-hostname"] != "web-7" || !strings.HasPrefix(md["instance-id"], "i-") || md["dsmode"] != "local" {
		t.Errorf("meta-data: %v", md)
	}
	var ud map[string]any
	if err := yaml.Unmarshal(s.UserData, &ud); err != nil {
		t.Fatal(err)
	}
	if ud["hostname"] != "web-7" || ud["timezone"] != "Europe/Berlin" {
		t.Errorf("user-data: %v", ud)
	}
	users := ud["users"].([]any)
	u := users[0].(map[string]any)
	if u["name"] != "ops" || u["sudo"] != "ALL=(ALL) NOPASSWD:ALL" || u["lock_passwd"] != true {
		t.Errorf("user: %v", u)
	}
	nc := string(s.NetworkConfig)
	for _, want := range []string{"version: 2", "10.0.0.5/24", "via: 10.0.0.1", "to: 0.0.0.0/0"} {
		if !strings.Contains(nc, want) {
			t.Errorf("network-config lacks %q:\n%s", want, nc)
		}
	}
}

// TestSchemaProblemsPointAtRecipe: when cloud-init's schema rejects what a
// recipe rendered, the error names the recipe line that produced it.
func TestSchemaProblemsPointAtRecipe(t *testing.T) {
	p := loadPlan(t, map[string]string{"r.yaml": header + "bake:\n  users:\n    - {name: ok}\n"})
	p.Users[0].Name = "" // what validation would refuse, forced to reach the schema
	_, err := p.Seed(Instance{}, StageBake, PlaceholderResolver())
	if err == nil || !strings.Contains(err.Error(), "r.yaml:5:7: bake.users[0]: rendered cloud-config rejected by cloud-init's schema at /users/0") {
		t.Fatalf("schema error not mapped to the recipe: %v", err)
	}
}

// TestScramVerifier checks the verifier against RFC 7677's worked example:
// the server signature derived from our ServerKey must match the RFC's.
func TestScramVerifier(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	_, stored, server := scramKeys("pencil", salt, 4096)
	auth := "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	m := hmac.New(sha256.New, server)
	m.Write([]byte(auth))
	if got := base64.StdEncoding.EncodeToString(m.Sum(nil)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", got)
	}
	// ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage); the RFC's is known.
	clientKey, _, _ := scramKeys("pencil", salt, 4096)
	m = hmac.New(sha256.New, stored)
	m.Write([]byte(auth))
	sig := m.Sum(nil)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	if got := base64.StdEncoding.EncodeToString(proof); got != "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=" {
		t.Errorf("client proof %s", got)
	}
	v := scramVerifier("pencil", "user")
	if !scramRE.MatchString(v) || v != scramVerifier("pencil", "user") || v == scramVerifier("pencil", "other") {
		t.Errorf("verifier %q: wrong form, not reproducible, or salt not per role", v)
	}
}
