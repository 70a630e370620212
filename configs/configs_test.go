// Package configs_test loads and validates every example config in this
// directory, so an example that drifts from the config contract fails CI.
package configs_test

import (
	"bytes"
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
// every relative password_file the example names, since the config checks
// that they exist. Examples must use relative paths for that reason.
func providePasswordFiles(t *testing.T, name string, data []byte) {
	t.Helper()
	var raw config.Config // decoded without validation, to find the paths
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return // Load reports it
	}
	t.Chdir(t.TempDir())
	for i, u := range raw.Upstreams {
		if u.PasswordFile == "" {
			continue
		}
		if filepath.IsAbs(u.PasswordFile) {
			t.Fatalf("%s: upstreams[%d].password_file: got absolute %q, want a relative path the test can provide", name, i, u.PasswordFile)
		}
		if err := os.MkdirAll(filepath.Dir(u.PasswordFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(u.PasswordFile, []byte("example"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
