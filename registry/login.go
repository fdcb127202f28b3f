package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CheckLogin asks the registry whether user and password are good, before
// they are saved anywhere.
func (c *Client) CheckLogin(ctx context.Context, host, user, password string) error {
	opts := []name.Option{}
	if c.plainHTTPAllowed(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return &RefError{Ref: host, Msg: err.Error()}
	}
	auth := &authn.Basic{Username: user, Password: password}
	// A repository pull scope makes token-based registries check the
	// credentials; basic-auth registries check them on /v2/.
	rt, err := transport.NewWithContext(ctx, reg, auth, c.transport, []string{reg.Repo("kiln-login-check").Scope(transport.PullScope)})
	if err != nil {
		return loginError(host, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return loginError(host, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login to %s: user %q was refused (wrong user name or password)", host, user)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s: the registry answered %s", host, resp.Status)
	}
	return nil
}

func loginError(host string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("login to %s: refused (wrong user name or password): %w", host, err)
	}
	return fmt.Errorf("login to %s: %w", host, err)
}

// DockerConfigPath is where docker (and go-containerregistry's default
// keychain) read credentials: $DOCKER_CONFIG/config.json or
// ~/.docker/config.json.
func DockerConfigPath() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// SaveLogin writes credentials for host into a docker config file, keeping
// everything else in it. The file is written whole with mode 0600: it
// holds a secret.
func SaveLogin(path, host, user, password string) error {
	doc := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: not a docker config file: %w (fix or move it first)", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("%s: auths: %w", path, err)
		}
	}
	entry, _ := json.Marshal(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
	auths[host] = entry
	doc["auths"], _ = json.Marshal(auths)
	b, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writePrivate(path, append(b, '\n'))
}

// writePrivate replaces path with b, mode 0600 from the first byte on.
func writePrivate(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-") // 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
