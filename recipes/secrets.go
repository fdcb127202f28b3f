package recipes

import (
	"fmt"
	"os"
	"strings"
)

// Resolver returns the value behind a secret reference. It is called only
// while a seed is written; values never enter a plan, a digest or an image.
type Resolver func(Secret) ([]byte, error)

// EnvResolver resolves env:NAME from the process environment and file:PATH
// from files, relative paths against the recipe's directory (and never out
// of it).
func (r *Recipe) EnvResolver() Resolver {
	return func(s Secret) ([]byte, error) {
		kind, target, ok := s.Ref()
		if !ok {
			return []byte(s), nil
		}
		switch kind {
		case "env":
			v, found := os.LookupEnv(target)
			if !found {
				return nil, fmt.Errorf("environment variable %s is not set", target)
			}
			return []byte(v), nil
		default:
			b, err := r.ReadLocal(target)
			if err != nil {
				return nil, fmt.Errorf("secret %s: %v", s, err)
			}
			return b, nil
		}
	}
}

// MapResolver resolves secrets from a map keyed by the reference itself
// ("env:DB_PASSWORD"): for tests and for callers with their own secret store.
func MapResolver(m map[string]string) Resolver {
	return func(s Secret) ([]byte, error) {
		if _, _, ok := s.Ref(); !ok {
			return []byte(s), nil
		}
		v, ok := m[string(s)]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set", s)
		}
		return []byte(v), nil
	}
}

// resolveLine resolves a one-line secret such as a password or hash: the
// trailing newline a file usually ends with is dropped.
func resolveLine(resolve Resolver, s Secret) (string, error) {
	b, err := resolve(s)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("secret %s holds more than one line", s)
	}
	return v, nil
}

// secretEnvFile is a seed-delivered EnvironmentFile, mode 0600, whose values
// are resolved from secrets only when the seed is written.
func secretEnvFile(path string, secrets map[string]Secret) BootFile {
	return BootFile{Path: path, Mode: 0o600, Owner: "root:root",
		Render: func(resolve Resolver) ([]byte, error) {
			env := map[string]string{}
			for k, s := range secrets {
				v, err := resolveLine(resolve, s)
				if err != nil {
					return nil, fmt.Errorf("secretEnv.%s: %v", k, err)
				}
				env[k] = v
			}
			return []byte(envFile(env)), nil
		}}
}

// PlaceholderResolver stands in for every secret with a value that passes
// the format checks of any field (it reads as a crypt hash): for validating
// what a recipe renders without touching real secrets.
func PlaceholderResolver() Resolver {
	return func(s Secret) ([]byte, error) {
		if _, _, ok := s.Ref(); !ok {
			return []byte(s), nil
		}
		return []byte("$6$kiln$placeholder.for.unresolved.secret"), nil
	}
}
