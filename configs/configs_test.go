// Package configs_test loads and validates every example config in this
// directory, so an example that drifts from the config contract fails CI.
package configs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-mirror/cairn/internal/config"
)

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.yaml examples found")
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			providePasswordFiles(t, name, data)
			c, err := config.Load(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("%s: Validate after Load: %v", name, err)
			}
		})
	}
}

// providePasswordFiles runs the test in a temporary working directory holding
// every relative password_file, TLS file and auth.htpasswd_file the example names,
// since the config checks that they exist. Examples must use relative paths
// for that reason.
func providePasswordFiles(t *testing.T, name string, data []byte) {
	t.Helper()
	var raw config.Config // decoded without validation, to find the paths
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return // Load reports it
	}
	t.Chdir(t.TempDir())
	files := map[string]string{} // path -> the field naming it
	for i, u := range raw.Upstreams {
		if u.PasswordFile != "" {
			files[u.PasswordFile] = fmt.Sprintf("upstreams[%d].password_file", i)
		}
		for j, e := range u.EffectiveEndpoints() {
			at := fmt.Sprintf("upstreams[%d].endpoints[%d]", i, j)
			if c := e.Credentials; c != nil && c.Basic != nil && c.Basic.PasswordFile != "" {
				files[c.Basic.PasswordFile] = at + ".credentials.basic.password_file"
			}
			if t := e.TLS; t != nil {
				for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
					if f != "" {
						files[f] = at + ".tls"
					}
				}
			}
		}
	}
	if raw.Auth.HtpasswdFile != "" {
		files[raw.Auth.HtpasswdFile] = "auth.htpasswd_file"
	}
	for path, field := range files {
		if filepath.IsAbs(path) {
			t.Fatalf("%s: %s: got absolute %q, want a relative path the test can provide", name, field, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("example"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
